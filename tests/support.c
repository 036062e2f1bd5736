/* Anchor so testsupport always has a source; fixtures live in tests/support/. */
int kontena_testsupport_anchor;
