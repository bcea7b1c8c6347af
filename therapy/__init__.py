"""The therapy runtime: session state machine, safety, SUDS, the session store and reports."""
