"""Cameras: ID card, face and document pictures as JPEG."""
