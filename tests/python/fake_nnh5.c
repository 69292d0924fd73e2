/*
 * tests/python/fake_nnh5.c - a library that says it is libnnh5 of another version:
 * tools/nnh5.py must not call it (test_clib.py, NNH5_LIBRARY pointing here).
 */
const char *nnh5_version(void);

const char *nnh5_version(void)
{
	return "9.0.0";
}
