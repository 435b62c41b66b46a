// Typeset the math of one built HTML page with MathJax at build time (called by _ext/lmmsim_weight.py).
//
//   node mathjax_prerender.js ES5_DIR CONFIG_JSON PAGE.html OUTPUT.html
//
// MathJax's own server-side use (its "tex2chtml-page" node demo): the page is loaded into MathJax's
// liteDOM, typeset with the components and options the page would have loaded in the browser
// (CONFIG_JSON, from Sphinx's mathjax3_config) and written back with the CHTML markup, the assistive
// MathML for screen readers and the stylesheet in place. The page's MathJax scripts are removed: the
// reader's browser only needs the CSS and the fonts. ES5_DIR is MathJax's es5/ folder (the pinned
// django-static-mathjax package), so the same MathJax version typesets as the one served before.
"use strict";
const fs = require("fs");

const [es5, configJson, input, output] = process.argv.slice(2);
const config = JSON.parse(configJson);
const loader = config.loader || {};
config.loader = { ...loader, paths: { mathjax: es5 }, require: require,
                  load: ["adaptors/liteDOM", ...(loader.load || [])] };
config.startup = { ...(config.startup || {}), document: fs.readFileSync(input, "utf8") };
global.MathJax = config;
require(es5 + "/startup.js");

MathJax.startup.promise
  .then(() => {
    const adaptor = MathJax.startup.adaptor;
    const page = MathJax.startup.document;
    for (const script of adaptor.tags(adaptor.root(page.document), "script")) {
      const src = adaptor.getAttribute(script, "src") || "";
      if (/(^|\/)mathjax\/startup\.js(\?|$)/.test(src) || adaptor.textContent(script).trim().startsWith("window.MathJax")) {
        adaptor.remove(script);
      }
    }
    const html = adaptor.doctype(page.document) + "\n" + adaptor.outerHTML(adaptor.root(page.document)) + "\n";
    fs.writeFileSync(output, html);
    console.log(Array.from(page.math).length);
  })
  .catch((error) => {
    console.error(`${input}: ${error.stack || error}`);
    process.exit(1);
  });
