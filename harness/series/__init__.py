"""`harness series`: a patch series applied, built, booted and tested patch by patch."""
