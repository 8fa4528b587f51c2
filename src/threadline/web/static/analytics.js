// Analytics charts (Chart.js), drawn from the JSON the page carries.
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  if (!window.Chart) return;
  var data = JSON.parse(document.getElementById("analytics-data").textContent);
  var text = getComputedStyle(document.documentElement).getPropertyValue("--muted").trim();
  Chart.defaults.color = text || "#666";
  var colours = { sms: "#2f5bea", whatsapp: "#1f9d55", email: "#8250df", webchat: "#0e7490", voice: "#b45309", yelp: "#c2410c", api: "#57606a" };
  new Chart(document.getElementById("volume"), {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: Object.keys(data.volume).map(function (ch) {
        return { label: data.channels[ch] || ch, data: data.volume[ch], backgroundColor: colours[ch] || "#888" };
      })
    },
    options: { maintainAspectRatio: false, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } }
  });
  new Chart(document.getElementById("satisfaction"), {
    type: "bar",
    data: { labels: ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"], datasets: [{ label: "Conversations", data: data.satisfaction, backgroundColor: "#2f5bea" }] },
    options: { maintainAspectRatio: false, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
  });
});
