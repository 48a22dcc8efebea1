"""The events service: the network's meetings, their invitations, answers and calendar."""
