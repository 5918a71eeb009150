/* Lantern documentation — small progressive enhancements. No dependencies. */
(function () {
  "use strict";

  function normalise(path) {
    // Treat "/guide/index.html" and "/guide/" as the same page.
    return path.replace(/index\.html$/, "");
  }

  function highlightNav() {
    var here = normalise(window.location.pathname);
    var links = document.querySelectorAll(".site-nav a");
    for (var i = 0; i < links.length; i++) {
      var target = normalise(new URL(links[i].getAttribute("href"), window.location.href).pathname);
      if (target === here) {
        links[i].classList.add("active");
        links[i].setAttribute("aria-current", "page");
      }
    }
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Fallback for plain-HTTP development hosts.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      try {
        document.execCommand("copy") ? resolve() : reject(new Error("copy failed"));
      } catch (err) {
        reject(err);
      } finally {
        document.body.removeChild(area);
      }
    });
  }

  function addCopyButtons() {
    var blocks = document.querySelectorAll("pre > code");
    Array.prototype.forEach.call(blocks, function (code) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy-button";
      button.textContent = "Copy";
      button.addEventListener("click", function () {
        // Drop shell prompts so the snippet can be pasted straight into a terminal.
        var text = code.textContent.replace(/^\$ /gm, "");
        copyText(text).then(function () {
          button.textContent = "Copied ✓";
          button.classList.add("copied");
        }, function () {
          button.textContent = "Press Ctrl+C";
        });
        window.setTimeout(function () {
          button.textContent = "Copy";
          button.classList.remove("copied");
        }, 1800);
      });
      code.parentNode.appendChild(button);
    });
  }

  function init() {
    highlightNav();
    addCopyButtons();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
