"""The result pages of Garmin route-send: one server-rendered page per outcome, in the
share's locale, styled like the share page (no JavaScript)."""

from __future__ import annotations

from jinja2 import Environment, select_autoescape

RESULT_PAGE = """\
<!doctype html>
<html lang="{{ locale }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{ heading }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0; color: #1e1e1e; background: #f4f1ea; }
header, main, footer { max-width: 960px; margin: 0 auto; padding: 1rem; }
a { color: #9c2f12; }
</style>
</head>
<body>
<header>
<h1>{{ heading }}</h1>
</header>
<main>
<p data-outcome="{{ outcome }}">{{ message }}</p>
</main>
<footer>
{% if share_url %}<nav><p><a href="{{ share_url }}">{{ back }}</a></p></nav>{% endif %}
</footer>
</body>
</html>
"""

# Each outcome: (heading, message). ``{title}`` is the route's title, ``{limit}`` the
# longest course Garmin takes.
OUTCOMES: dict[str, dict[str, tuple[str, str]]] = {
    "en": {
        "sent": (
            "Sent to Garmin Connect",
            "“{title}” is now a course in your Garmin Connect. It reaches your watch at its "
            "next sync: start it from the Courses menu.",
        ),
        "denied": (
            "Not sent",
            "You did not allow access to your Garmin Connect account, so nothing was sent.",
        ),
        "invalid": ("This link is incomplete", "Start sending again from the route's page."),
        "state_unknown": ("This link is not valid", "Start sending again from the route's page."),
        "state_used": ("This link was already used", "Start sending again from the route's page."),
        "state_expired": ("This link has expired", "Start sending again from the route's page."),
        "wrong_browser": (
            "Finish in the browser you started in",
            "This send was started in another browser (or its cookie is gone), so nothing "
            "was sent. Start again from the route's page.",
        ),
        "share_gone": ("This route is gone", "Its owner deleted it, so nothing was sent."),
        "no_course_import": (
            "Garmin Connect does not allow course import",
            "Allow this app to import courses in Garmin Connect (the permissions of "
            "connected apps), then send the route again.",
        ),
        "quota": (
            "Garmin is busy",
            "Garmin's limit of requests is reached for now. Nothing was sent: try again later.",
        ),
        "garmin_down": (
            "Garmin Connect is unavailable",
            "Garmin did not answer. Nothing was sent: try again in a few minutes.",
        ),
        "garmin_refused": (
            "Garmin refused the request",
            "Nothing was sent. Start sending again from the route's page.",
        ),
        "too_long": (
            "This route is too long for Garmin",
            "Garmin courses are at most {limit} long (10,000 points 100 m apart), so "
            "nothing was sent.",
        ),
        "not_configured": (
            "Sending to Garmin is not available",
            "This service is not set up to send routes to Garmin Connect.",
        ),
        "back": ("Back to the route", ""),
    },
    "fr": {
        "sent": (
            "Envoyé vers Garmin Connect",
            "« {title} » est maintenant un parcours dans votre Garmin Connect. Il arrive sur "
            "votre montre à la prochaine synchronisation : lancez-le depuis le menu Parcours.",
        ),
        "denied": (
            "Rien n'a été envoyé",
            "Vous n'avez pas autorisé l'accès à votre compte Garmin Connect.",
        ),
        "invalid": ("Ce lien est incomplet", "Recommencez l'envoi depuis la page du parcours."),
        "state_unknown": (
            "Ce lien n'est pas valide",
            "Recommencez l'envoi depuis la page du parcours.",
        ),
        "state_used": (
            "Ce lien a déjà servi",
            "Recommencez l'envoi depuis la page du parcours.",
        ),
        "state_expired": ("Ce lien a expiré", "Recommencez l'envoi depuis la page du parcours."),
        "wrong_browser": (
            "Terminez dans le navigateur de départ",
            "Cet envoi a commencé dans un autre navigateur (ou son cookie a disparu) : rien "
            "n'a été envoyé. Recommencez depuis la page du parcours.",
        ),
        "share_gone": (
            "Ce parcours n'existe plus",
            "Son auteur l'a supprimé : rien n'a été envoyé.",
        ),
        "no_course_import": (
            "Garmin Connect n'autorise pas l'import de parcours",
            "Autorisez cette application à importer des parcours dans Garmin Connect (les "
            "autorisations des applications connectées), puis renvoyez le parcours.",
        ),
        "quota": (
            "Garmin est saturé",
            "La limite de requêtes de Garmin est atteinte. Rien n'a été envoyé : réessayez "
            "plus tard.",
        ),
        "garmin_down": (
            "Garmin Connect est indisponible",
            "Garmin n'a pas répondu. Rien n'a été envoyé : réessayez dans quelques minutes.",
        ),
        "garmin_refused": (
            "Garmin a refusé la demande",
            "Rien n'a été envoyé. Recommencez depuis la page du parcours.",
        ),
        "too_long": (
            "Ce parcours est trop long pour Garmin",
            "Un parcours Garmin fait au plus {limit} (10 000 points espacés de 100 m) : rien "
            "n'a été envoyé.",
        ),
        "not_configured": (
            "L'envoi vers Garmin n'est pas disponible",
            "Ce service n'est pas configuré pour envoyer des parcours vers Garmin Connect.",
        ),
        "back": ("Retour au parcours", ""),
    },
    "de": {
        "sent": (
            "An Garmin Connect gesendet",
            "„{title}“ ist jetzt eine Strecke in deinem Garmin Connect. Sie kommt bei der "
            "nächsten Synchronisierung auf deine Uhr: starte sie im Menü Strecken.",
        ),
        "denied": (
            "Nicht gesendet",
            "Du hast den Zugriff auf dein Garmin-Connect-Konto nicht erlaubt.",
        ),
        "invalid": ("Dieser Link ist unvollständig", "Starte das Senden erneut auf der Seite."),
        "state_unknown": ("Dieser Link ist ungültig", "Starte das Senden erneut auf der Seite."),
        "state_used": (
            "Dieser Link wurde schon benutzt",
            "Starte das Senden erneut auf der Seite.",
        ),
        "state_expired": ("Dieser Link ist abgelaufen", "Starte das Senden erneut auf der Seite."),
        "wrong_browser": (
            "Beende es im Browser, in dem du begonnen hast",
            "Das Senden wurde in einem anderen Browser begonnen (oder sein Cookie fehlt): "
            "nichts wurde gesendet. Starte erneut auf der Seite der Strecke.",
        ),
        "share_gone": (
            "Diese Strecke gibt es nicht mehr",
            "Sie wurde gelöscht: nichts wurde gesendet.",
        ),
        "no_course_import": (
            "Garmin Connect erlaubt keinen Streckenimport",
            "Erlaube dieser App in Garmin Connect, Strecken zu importieren (Berechtigungen "
            "verbundener Apps), und sende die Strecke dann erneut.",
        ),
        "quota": (
            "Garmin ist ausgelastet",
            "Garmins Anfragelimit ist erreicht. Nichts wurde gesendet: versuche es später.",
        ),
        "garmin_down": (
            "Garmin Connect ist nicht erreichbar",
            "Garmin hat nicht geantwortet. Nichts wurde gesendet: versuche es in ein paar "
            "Minuten erneut.",
        ),
        "garmin_refused": (
            "Garmin hat die Anfrage abgelehnt",
            "Nichts wurde gesendet. Starte erneut auf der Seite der Strecke.",
        ),
        "too_long": (
            "Diese Strecke ist zu lang für Garmin",
            "Garmin-Strecken sind höchstens {limit} lang (10.000 Punkte im Abstand von "
            "100 m): nichts wurde gesendet.",
        ),
        "not_configured": (
            "Senden an Garmin ist nicht verfügbar",
            "Dieser Dienst ist nicht zum Senden an Garmin Connect eingerichtet.",
        ),
        "back": ("Zurück zur Strecke", ""),
    },
    "es": {
        "sent": (
            "Enviada a Garmin Connect",
            "«{title}» ya es un recorrido en tu Garmin Connect. Llega a tu reloj en la "
            "próxima sincronización: inícialo desde el menú Recorridos.",
        ),
        "denied": (
            "No se envió",
            "No permitiste el acceso a tu cuenta de Garmin Connect.",
        ),
        "invalid": ("Este enlace está incompleto", "Vuelve a enviar desde la página de la ruta."),
        "state_unknown": (
            "Este enlace no es válido",
            "Vuelve a enviar desde la página de la ruta.",
        ),
        "state_used": ("Este enlace ya se usó", "Vuelve a enviar desde la página de la ruta."),
        "state_expired": ("Este enlace caducó", "Vuelve a enviar desde la página de la ruta."),
        "wrong_browser": (
            "Termina en el navegador donde empezaste",
            "El envío empezó en otro navegador (o falta su cookie): no se envió nada. "
            "Vuelve a empezar desde la página de la ruta.",
        ),
        "share_gone": ("Esta ruta ya no existe", "Su autor la borró: no se envió nada."),
        "no_course_import": (
            "Garmin Connect no permite importar recorridos",
            "Permite a esta aplicación importar recorridos en Garmin Connect (los permisos "
            "de las aplicaciones conectadas) y vuelve a enviar la ruta.",
        ),
        "quota": (
            "Garmin está saturado",
            "Se alcanzó el límite de peticiones de Garmin. No se envió nada: inténtalo más tarde.",
        ),
        "garmin_down": (
            "Garmin Connect no está disponible",
            "Garmin no respondió. No se envió nada: inténtalo en unos minutos.",
        ),
        "garmin_refused": (
            "Garmin rechazó la petición",
            "No se envió nada. Vuelve a empezar desde la página de la ruta.",
        ),
        "too_long": (
            "Esta ruta es demasiado larga para Garmin",
            "Un recorrido de Garmin mide como mucho {limit} (10.000 puntos a 100 m): no se "
            "envió nada.",
        ),
        "not_configured": (
            "El envío a Garmin no está disponible",
            "Este servicio no está configurado para enviar rutas a Garmin Connect.",
        ),
        "back": ("Volver a la ruta", ""),
    },
}

_result = Environment(
    autoescape=select_autoescape(default=True, default_for_string=True)
).from_string(RESULT_PAGE)


def result_html(
    outcome: str, locale: str, *, title: str = "", share_url: str | None = None, limit: str = ""
) -> str:
    """The page for ``outcome`` (a key of ``OUTCOMES``), autoescaped."""
    texts = OUTCOMES[locale]
    heading, message = texts[outcome]
    return _result.render(
        locale=locale,
        outcome=outcome,
        heading=heading,
        message=message.format(title=title, limit=limit),
        share_url=share_url,
        back=texts["back"][0],
    )
