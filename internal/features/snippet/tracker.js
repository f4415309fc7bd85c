/*! Web Tracker snippet: <script src="https://TRACKER/tracker.js" async></script> */
(function(w,d){var s=d.currentScript,e=s&&s.getAttribute("data-endpoint")||(s?new URL(s.src).origin:"")+"/api/v1/events",l,k;
function v(){var i=s&&s.getAttribute("data-visitor-id");if(i)return i;i=w.webTrackerVisitorId;if(typeof i=="function")i=i();if(i)return String(i);
try{i=localStorage.getItem("webtracker_visitor");if(!i){i=w.crypto&&crypto.randomUUID?crypto.randomUUID():Date.now().toString(36)+Math.random().toString(36).slice(2);localStorage.setItem("webtracker_visitor",i)}return i}catch(x){return k||(k="anonymous-"+Math.random().toString(36).slice(2))}}
function p(){var u=location.href.split("#")[0];if(u===l)return;l=u;var b=JSON.stringify({visitor_id:v(),url:u});
try{if(navigator.sendBeacon&&navigator.sendBeacon(e,new Blob([b],{type:"text/plain"})))return}catch(x){}
fetch(e,{method:"POST",body:b,keepalive:true,credentials:"omit",headers:{"Content-Type":"text/plain"}}).catch(function(){})}
["pushState","replaceState"].forEach(function(m){var o=history[m];history[m]=function(){var r=o.apply(this,arguments);p();return r}});
w.addEventListener("popstate",p);p()})(window,document);
