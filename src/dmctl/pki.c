/* pki: placeholder, being written */
