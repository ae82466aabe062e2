// Optional: the console works without it. Copy buttons for the curl and pytest snippets.
document.addEventListener("click", function (e) {
  var button = e.target.closest("button.copy");
  if (!button) return;
  var area = document.getElementById(button.dataset.target);
  area.select();
  (navigator.clipboard ? navigator.clipboard.writeText(area.value) : Promise.reject())
    .then(function () { button.textContent = "Copied"; }, function () { document.execCommand("copy"); button.textContent = "Copied"; });
});
