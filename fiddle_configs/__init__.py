"""Fiddle graphs: model sizes and registered PaxML experiments."""
