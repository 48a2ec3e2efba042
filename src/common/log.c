/* log: placeholder, being written */
