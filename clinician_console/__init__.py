"""The clinician console (web server, API, page, auth). Built on therapy's commands, events and store."""
