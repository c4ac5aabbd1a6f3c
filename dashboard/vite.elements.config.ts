// The embeddable custom elements: one ES module at a stable name, served at /elements.js.
import { defineConfig } from "vite";

export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact", legalComments: "none" },
  build: {
    outDir: "../ailedger/api/dashboard",
    emptyOutDir: false,
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: false,
    lib: { entry: "src/elements.tsx", formats: ["es"], fileName: () => "elements.js" },
  },
});
