#!/usr/bin/env node
// The package ships TypeScript sources; tsx compiles them on load, so register it before importing the CLI.
import { register } from "tsx/esm/api";

register();
await import("../src/cli.ts");
