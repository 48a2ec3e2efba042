/* file: placeholder, being written */
