/* notify: placeholder, being written */
