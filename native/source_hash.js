#!/usr/bin/env node
// Hash of the addon's C++ sources. The build bakes it into the addon; the loader recomputes it and refuses a
// build made from other sources (a stale build), with the command that rebuilds it.
"use strict";
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");

function sourceHash() {
  const dir = path.join(__dirname, "src");
  const h = crypto.createHash("sha256");
  for (const name of fs.readdirSync(dir).sort()) {
    h.update(name);
    h.update(fs.readFileSync(path.join(dir, name)));
  }
  return h.digest("hex").slice(0, 16);
}

module.exports = { sourceHash };
if (require.main === module) console.log(sourceHash());
