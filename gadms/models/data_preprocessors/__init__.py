from .text_person_data_preprocessor import (CLIP_MEAN, CLIP_STD,
                                            TextPersonDataPreprocessor)

__all__ = ['TextPersonDataPreprocessor', 'CLIP_MEAN', 'CLIP_STD']
