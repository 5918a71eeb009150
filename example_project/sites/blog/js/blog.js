/* Crumb & Co journal — tiny reading-time estimator. No dependencies. */
(function () {
  "use strict";

  var WORDS_PER_MINUTE = 220;

  function countWords(text) {
    var words = text.trim().split(/\s+/);
    return words.length === 1 && words[0] === "" ? 0 : words.length;
  }

  function estimate() {
    var body = document.querySelector(".post-body");
    var targets = document.querySelectorAll("[data-reading-time]");
    if (!body || targets.length === 0) {
      return;
    }
    var words = countWords(body.textContent || "");
    var minutes = Math.max(1, Math.round(words / WORDS_PER_MINUTE));
    var label = minutes + " min read";
    for (var i = 0; i < targets.length; i++) {
      targets[i].textContent = label;
      targets[i].setAttribute("title", words + " words");
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", estimate);
  } else {
    estimate();
  }
})();
