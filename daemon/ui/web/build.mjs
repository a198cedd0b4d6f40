// Build the reference UI into ../static (committed): two bundles (kiosk, technician)
// with MQTT.js and @msgpack/msgpack inside, and the pages, style and demo data copied.
// Run through ./dev (which then stamps static/BUILD.json with the sources' hash).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "static");

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await build({
  entryPoints: { kiosk: join(here, "src", "kiosk.js"), tech: join(here, "src", "tech.js") },
  bundle: true,
  format: "esm",
  minify: true,
  target: ["chrome100", "firefox100", "safari15"],
  outdir: out,
  splitting: true,
  chunkNames: "shared-[hash]",
  legalComments: "linked",
  logLevel: "warning",
});

for (const name of readdirSync(join(here, "src"))) {
  if (/\.(html|css|svg)$/.test(name)) copyFileSync(join(here, "src", name), join(out, name));
}
copyFileSync(join(here, "data", "office-demo.json"), join(out, "office-demo.json"));
