"""Teams: several ragex users sharing one repository's vectors (issue #14)."""
