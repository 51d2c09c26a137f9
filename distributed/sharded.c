/* sharded.c: Embedding{sharded = true}: an embedding table whose rows are split over the MPI
 * ranks (issue 16). Part of keras.distributed_mpi (dist_mpi.c is the module's entry point);
 * reaches the backend through core._capi only.
 *
 * DESIGN
 *
 * Placement: global row g (0-based; id g + 1, id 0 is padding) lives on rank g mod n, as
 *   local row g div n. Rank r holds R_r = ceil((V - r) / n) rows (V need not divide by n).
 *   Interleaving rather than ranges: vocabularies are usually numbered by frequency (the
 *   hot ids small), so ranges would put the hot rows, and most of the exchange, on rank 0;
 *   id mod n spreads any contiguous run of ids over every rank. (A true hash would also
 *   balance adversarial id sets; mod n keeps the owner and local row one division away and
 *   makes "ids that all land on one rank" easy to state.)
 *
 * The shard is an ordinary dense (R_r, D) weight variable of the graph, so the optimizer
 *   (its states are (R_r, D) too), the lazy update and the plan need nothing new for it.
 *
 * Forward (a plan node hook, kl_plan_set_node_ext, on the Embedding node): before the node
 *   runs, each rank
 *   1. checks its ids (integers in [0, V]) and deduplicates the non-padding ones, sorted and
 *      grouped by owner;
 *   2. MPI_Alltoall of the per-owner counts, then one MPI_Allreduce(max) of {error,
 *      largest count}: every rank learns whether some rank refused its ids (each then fails
 *      the step: the refusing rank with its message, the others naming it; no rank is left
 *      in a collective) and how many rounds a count beyond int needs (chunked rounds of at
 *      most 2^30 ids/rows per peer: Open MPI 4.1 has no large-count calls);
 *   3. MPI_Alltoallv of the ids to their owners; the owners copy those rows (local g div n)
 *      into the reply, and an MPI_Alltoallv of rows (an MPI type of D floats) returns them;
 *   4. the node then runs on substitutes: a compact (U, D) table of the received rows (in
 *      the order of the ids sent) and the ids renumbered into it (0 stays padding). The
 *      Embedding kernel, and the fused Embedding -> mean (plain or masked) when the plan
 *      found one, run unchanged on them: the same rows, summed in the same order, so a
 *      sharded model's outputs have the bits of a plain Embedding holding the same table.
 *
 * Backward: the node's weight gradient, computed on the substitutes, is row_sparse over the
 *   compact rows. Scaled by n_r / N (this rank's share of the global batch, as the
 *   data-parallel hook scales every other gradient), its rows go back to their owners by
 *   the reverse MPI_Alltoallv (the row order of the forward's ids: no ids resent). Each
 *   owner merges what it receives in source-rank order (rank 0's rows first; within a
 *   source each id once), starting from +0, so a row's sum is the data-parallel
 *   exchange's rank-order sum: bit-identical to a plain Embedding under
 *   compile{distributed = {deterministic = true}}, and equal to np = 1 up to float
 *   summation order. The result is a row_sparse gradient of the shard (R_r, D) over the
 *   owned rows some rank touched; the lazy optimizer updates those rows and their states
 *   only, on their owner only. Never an allreduce of the table.
 *
 * The data-parallel gradient hook (dist_mpi.c) skips the sharded weights
 *   (kl_sharded_owns_grad): their gradients are already the global sum, for owned rows.
 *   The broadcast of rank 0's weights at fit start skips them too (model_dist.lua).
 *
 * Empty steps: a rank whose share of a global batch is empty still serves rows and receives
 *   gradients: kl_plan_train_step_empty calls the node hook with no ids, in the order a
 *   full step would (forwards in node order, backwards in reverse).
 *
 * Initialisation does not depend on n: row g, column c of the table is
 *   f(splitmix64(seed + splitmix64(g * D + c))) (uniform or normal), computed by the owner
 *   for its rows only (kl_fill_rows_counter in the core), so every rank's share is what an
 *   np = 1 run gives those rows and no rank ever holds more than its share. The seed is
 *   rank 0's draw, broadcast when the layer is built.
 *
 * Memory per rank: V x D x dtype size x (1 + optimizer states) / n for the shard and its
 *   states (Adam: 3), plus O(batch) buffers: the deduplicated ids and their rows both
 *   ways (<= n_r x L ids and rows sent, and as many received as the other ranks ask this
 *   one for), grow-only and kept across steps. get_weights() gathers the full table on
 *   every rank; save() gathers it on rank 0 only. */
