/* httpc: placeholder, being written */
