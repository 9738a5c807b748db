from .text_person_data_sample import TextPersonDataSample

__all__ = ['TextPersonDataSample']
