// Imported first by tests that decode images while libtorch computes (fine-tuning, reproduce): OpenMP's default
// spinning wait policy keeps both cores busy between ops and starves sharp's decode threads (a fine-tuning step
// went from 0.5 s to 2.4 s on the 2-core machine). libgomp reads the variable once, when libtorch loads, so this
// must run before anything imports src/tensor; `seer eval` and `seer reproduce` set the same default.
process.env.OMP_WAIT_POLICY ??= "PASSIVE";
