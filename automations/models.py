"""Automation rules and their run log."""
