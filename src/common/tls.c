/* tls: placeholder, being written */
