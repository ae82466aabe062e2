"""Clients of outside services: SuprSend follow-ups and the Usermaven sink."""
