// DevServices module.
