/* test_threads.c: two OS threads, each with its own lua_State, train and predict at once
 * (an embedding host such as a game server or nginx). Each state requires "keras" (the one
 * keras/core.so of the process), seeds keras.random, draws its data and initial weights from
 * its own generator, fits a sparse model with dropout and shuffling, and predicts; its losses,
 * weights and predictions must equal, bit for bit, the same script run alone on the main
 * thread (with different seeds and with the same seed in both threads). A shared generator,
 * a non-atomic refcount or any other process-wide state touched by both would show here as
 * a different stream, and under ThreadSanitizer (docs/RELIABILITY.md, "Threads") as a race.
 * Built against Lua only (not kl_backend): the backend comes with keras/core.so.
 * KL_THREADS_ROUNDS (default 5) sets how many rounds of two threads run. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KL_LUA_DIR
#define KL_LUA_DIR "build/lua"
#endif

/* Returns one string: the epochs' losses, every weight and every prediction, in %a. */
static const char *const script =
    "local seed = ...\n"
    "local keras = require('keras')\n"
    "keras.random.seed(seed)\n"
    "local X = keras.sparse.rand({120, 50}, 'csr', 0.1)\n"
    "local y = keras.random.normal({120, 1})\n"
    "local model = keras.Sequential{\n"
    "  keras.layers.Input{shape = {50}, sparse = true},\n"
    "  keras.layers.Dense{units = 4, sparse_weight = true, activation = 'relu'},\n"
    "  keras.layers.Dropout{rate = 0.25},\n"
    "  keras.layers.Dense{units = 1},\n"
    "}\n"
    "model:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.01}, loss = 'mse'}\n"
    "local h = model:fit(X, y, {batch_size = 16, epochs = 3, verbose = 0, shuffle = true})\n"
    "local out = {}\n"
    "local function walk(v)\n"
    "  if type(v) == 'table' then for _, e in ipairs(v) do walk(e) end\n"
    "  else out[#out + 1] = string.format('%a', v) end\n"
    "end\n"
    "walk(h.history.loss)\n"
    "for _, w in ipairs(model:get_weights()) do walk(w:totable()) end\n"
    "walk(model:predict(X, {batch_size = 32}):totable())\n"
    "collectgarbage()\n"
    "return table.concat(out, ' ')\n";

typedef struct job {
  long long seed;
  char *result; /* malloc'd; NULL with err set on failure */
  char err[512];
} job;

static void *run(void *arg) {
  job *j = arg;
  j->result = NULL;
  lua_State *L = luaL_newstate();
  if (!L) {
    snprintf(j->err, sizeof j->err, "luaL_newstate failed");
    return NULL;
  }
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushstring(L, KL_LUA_DIR "/?.lua;" KL_LUA_DIR "/?/init.lua");
  lua_setfield(L, -2, "path");
  lua_pushstring(L, KL_LUA_DIR "/?.so");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  if (luaL_loadstring(L, script) != LUA_OK) {
    snprintf(j->err, sizeof j->err, "load: %s", lua_tostring(L, -1));
  } else {
    lua_pushinteger(L, j->seed);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
      snprintf(j->err, sizeof j->err, "run: %s", lua_tostring(L, -1));
    } else {
      size_t n;
      const char *s = lua_tolstring(L, -1, &n);
      j->result = s ? malloc(n + 1) : NULL;
      if (j->result) memcpy(j->result, s, n + 1);
      else snprintf(j->err, sizeof j->err, "no result");
    }
  }
  lua_close(L);
  return NULL;
}

static int failures = 0, checks = 0;

static void check_same(const char *what, const job *got, const char *want) {
  checks++;
  if (!got->result) {
    failures++;
    fprintf(stderr, "%s: failed: %s\n", what, got->err);
  } else if (strcmp(got->result, want) != 0) {
    failures++;
    fprintf(stderr, "%s: result differs from the same script run alone\n  got:  %.160s...\n"
            "  want: %.160s...\n", what, got->result, want);
  }
}

int main(void) {
  const char *r = getenv("KL_THREADS_ROUNDS");
  int rounds = r && atoi(r) > 0 ? atoi(r) : 5;
  /* the references: each seed alone, on the main thread */
  job ref1 = {11, NULL, ""}, ref2 = {22, NULL, ""};
  run(&ref1);
  run(&ref2);
  if (!ref1.result || !ref2.result) {
    fprintf(stderr, "reference run failed: %s%s\n", ref1.err, ref2.err);
    return 1;
  }
  checks++;
  if (strcmp(ref1.result, ref2.result) == 0) { /* the seed must matter */
    failures++;
    fprintf(stderr, "seeds 11 and 22 gave the same results\n");
  }
  job again = {11, NULL, ""}; /* a second state on the main thread: the stream restarts */
  run(&again);
  check_same("seed 11 rerun on the main thread", &again, ref1.result);
  free(again.result);
  for (int round = 0; round < rounds; round++) {
    /* different seeds, then the same seed, in two threads at once */
    for (int same = 0; same < 2; same++) {
      job a = {11, NULL, ""}, b = {same ? 11 : 22, NULL, ""};
      pthread_t ta, tb;
      if (pthread_create(&ta, NULL, run, &a) != 0 || pthread_create(&tb, NULL, run, &b) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
      }
      pthread_join(ta, NULL);
      pthread_join(tb, NULL);
      char what[96];
      snprintf(what, sizeof what, "round %d, thread 1 (seed 11)", round);
      check_same(what, &a, ref1.result);
      snprintf(what, sizeof what, "round %d, thread 2 (seed %lld)", round, b.seed);
      check_same(what, &b, same ? ref1.result : ref2.result);
      free(a.result);
      free(b.result);
    }
  }
  free(ref1.result);
  free(ref2.result);
  printf("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
