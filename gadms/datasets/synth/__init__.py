"""Procedural pedestrians for SynthPerson: attributes, captions, drawing."""
from .attributes import PersonAttributes, sample_attributes
from .captions import generate_captions
from .render import render_person

__all__ = [
    'PersonAttributes', 'sample_attributes', 'generate_captions',
    'render_person'
]
