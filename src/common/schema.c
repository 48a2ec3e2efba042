/* schema: placeholder, being written */
