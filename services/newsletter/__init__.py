"""The newsletter service: every e-mail the network sends, and the digest."""
