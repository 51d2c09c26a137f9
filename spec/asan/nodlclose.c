/* nodlclose.c: preloaded under ASan so that lua_close does not unload C modules (their leak
 * stacks then name real functions instead of "<unknown module>"). Built by tools/test-asan. */
int dlclose(void *handle) {
  (void)handle;
  return 0;
}
