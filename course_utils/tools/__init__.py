"""Developer tooling (benchmark, kit-source sync): not part of the lessons."""
