/* health: placeholder, being written */
