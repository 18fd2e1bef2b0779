"""Understanding what customers write: normalisation, sounds, concepts, similarity, the matcher, commands."""
