"""The crawl's rules that need no database: URL normalization, crawl scope, bug
fingerprints, untrusted text, and the stored form of site credentials."""
