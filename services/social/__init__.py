"""The social service: stories, their review against the guide, and the Facebook Page."""
