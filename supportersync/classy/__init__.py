"""The Classy side: the API client and how each entity's records map to rows."""
