"""The public page's Jinja2 template, kept in a module so it ships with the package."""

SHARE_PAGE = """\
<!doctype html>
<html lang="{{ locale }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<meta name="description" content="{{ description }}">
<link rel="canonical" href="{{ page_url }}">
<link rel="alternate" type="application/geo+json" href="{{ geojson_url }}">
<meta property="og:type" content="website">
<meta property="og:title" content="{{ title }}">
<meta property="og:description" content="{{ description }}">
<meta property="og:url" content="{{ page_url }}">
<meta property="og:locale" content="{{ og_locale }}">
<meta property="og:image" content="{{ preview_url }}">
<meta property="og:image:type" content="image/jpeg">
<meta property="og:image:width" content="{{ preview_width }}">
<meta property="og:image:height" content="{{ preview_height }}">
<meta property="og:image:alt" content="{{ preview_alt }}">
<meta name="twitter:card" content="summary_large_image">
<meta name="twitter:title" content="{{ title }}">
<meta name="twitter:description" content="{{ description }}">
<meta name="twitter:image" content="{{ preview_url }}">
<meta name="twitter:image:alt" content="{{ preview_alt }}">
<style>
body { font-family: system-ui, sans-serif; margin: 0; color: #1e1e1e; background: #f4f1ea; }
header, main, footer { max-width: 960px; margin: 0 auto; padding: 1rem; }
img { max-width: 100%; height: auto; display: block; }
dl { display: grid; grid-template-columns: max-content auto; gap: .25rem 1rem; }
dt { font-weight: 600; }
a { color: #9c2f12; }
</style>
</head>
<body>
<header>
<h1>{{ title }}</h1>
<p>{{ description }}</p>
</header>
<main>
<figure>
<img src="{{ preview_url }}" width="{{ preview_width }}" height="{{ preview_height }}"
 alt="{{ preview_alt }}">
</figure>
<section aria-labelledby="stats-heading">
<h2 id="stats-heading">{{ texts.stats }}</h2>
<dl>
<dt>{{ texts.distance }}</dt><dd data-stat="distance">{{ distance }}</dd>
<dt>{{ texts.gain }}</dt><dd data-stat="gain">{{ gain }}</dd>
<dt>{{ texts.loss }}</dt><dd data-stat="loss">{{ loss }}</dd>
{% if trail %}<dt>{{ texts.trail }}</dt><dd data-stat="trail">{{ trail }}</dd>{% endif %}
</dl>
</section>
</main>
<footer>
<nav aria-label="{{ texts.download }}">
<p>{{ texts.download }}:
<a href="{{ geojson_url }}" download>{{ texts.geojson }}</a> ·
<a href="{{ gpx_url }}" download>{{ texts.gpx }}</a></p>
</nav>
</footer>
</body>
</html>
"""
