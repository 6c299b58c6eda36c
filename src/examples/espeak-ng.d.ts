// Types for the parts of the `espeak-ng` package (an Emscripten build of the eSpeak NG command line) that
// the examples use. The package ships no declarations.
declare module "espeak-ng" {
  interface EmscriptenFs {
    writeFile(path: string, data: string | Uint8Array): void;
    readFile(path: string): Uint8Array;
  }
  interface ESpeakNgModule {
    FS: EmscriptenFs;
  }
  interface ESpeakNgOptions {
    /** argv of the espeak-ng command line. */
    arguments: string[];
    print?: (text: string) => void;
    printErr?: (text: string) => void;
    /** Run before main(); the options object becomes the module, so `FS` is reachable through it. */
    preRun?: (() => void)[];
    instantiateWasm?: (
      imports: WebAssembly.Imports,
      done: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void,
    ) => object;
  }
  /** Instantiates the module and runs main() with `arguments`; resolves after it exits. */
  export default function ESpeakNg(options: ESpeakNgOptions): Promise<ESpeakNgModule>;
}
