"""Who is calling: the cached users, profiles and keys (`cache`), the credentials a request
carries (`credentials`), and the channel that tells every process what changed
(`notifications`)."""
