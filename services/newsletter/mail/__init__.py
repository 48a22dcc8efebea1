"""Mail rendering and composition for the newsletter service."""
