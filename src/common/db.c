/* db: placeholder, being written */
