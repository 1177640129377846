// vega-interpreter as a classic script: adds vega.expressionInterpreter to the global vega.
import { expressionInterpreter } from "vega-interpreter";
globalThis.vega.expressionInterpreter = expressionInterpreter;
