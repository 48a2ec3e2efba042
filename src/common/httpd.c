/* httpd: placeholder, being written */
