"""A CDN in front of the local cloud's origins."""
