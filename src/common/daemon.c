/* daemon: placeholder, being written */
