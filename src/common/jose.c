/* jose: placeholder, being written */
