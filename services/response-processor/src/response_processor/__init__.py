"""response-processor: the users authority and request processing on the response network."""
