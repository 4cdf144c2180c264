"""Genera los conjuntos de datos del curso a partir de datos escritos a mano.

- ``geografia_instrucciones.jsonl``: preguntas sobre los 20 países soberanos de habla hispana
  (capital, moneda, región, gentilicio, un lugar famoso, idiomas y países vecinos). Todas las
  respuestas siguen el mismo estilo ("🌎 Dato: ...") para que un ajuste fino corto se note.
- ``resenas.jsonl``: reseñas breves y equilibradas (1 = positiva, 0 = negativa).
- ``texto_general.jsonl``: preguntas de cultura general (no de geografía) con respuestas naturales,
  para medir el olvido: ningún adaptador del curso se entrena con ellas.
- ``preferencias.jsonl``: pares de preferencias (pregunta, respuesta elegida, respuesta rechazada)
  sobre los mismos hechos de geografía, para DPO (cuaderno 10). La partición es por hecho, como
  la de las instrucciones: ningún hecho de entrenamiento aparece en validación ni en prueba.

El resultado es determinista: con la misma semilla, el mismo archivo byte a byte.

Uso::

    python -m helpers.maintainers.build_datasets              # reescribe helpers/data/
    python -m helpers.maintainers.build_datasets --salida DIR # los escribe en otra carpeta
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
INSTRUCTIONS_NAME = "geografia_instrucciones.jsonl"
REVIEWS_NAME = "resenas.jsonl"

SEED = 2025
PREFIX = "🌎 Dato:"

# --------------------------------------------------------------------------------------
# 1. Geografía: hechos por país y formas de preguntar por cada atributo
# --------------------------------------------------------------------------------------

# Cada respuesta es una frase completa que repite el sujeto de la pregunta. Un atributo que
# falta en un país se omite a propósito (dato ambiguo o discutible):
# - Guinea Ecuatorial, capital: está en pleno traslado de Malabo a Ciudad de la Paz.
# - Cuba, vecinos: es una isla sin fronteras terrestres con otros países soberanos
#   (la base de Guantánamo complicaría la respuesta).
# Puerto Rico no es un país soberano y no aparece.
COUNTRIES: dict[str, dict[str, str]] = {
    "Argentina": {
        "capital": "La capital de Argentina es Buenos Aires.",
        "currency": "La moneda de Argentina es el peso argentino.",
        "region": "Argentina está en América del Sur, en el extremo sur del continente.",
        "demonym": "El gentilicio de Argentina es argentino o argentina.",
        "landmark": "En Argentina está el glaciar Perito Moreno, en la Patagonia.",
        "language": "En Argentina se habla español.",
        "neighbours": "Argentina limita con Chile, Bolivia, Paraguay, Brasil y Uruguay.",
    },
    "Bolivia": {
        "capital": "La capital constitucional de Bolivia es Sucre; la sede del gobierno está en La Paz.",
        "currency": "La moneda de Bolivia es el boliviano.",
        "region": "Bolivia está en América del Sur y no tiene salida al mar.",
        "demonym": "El gentilicio de Bolivia es boliviano o boliviana.",
        "landmark": "En Bolivia está el salar de Uyuni, el mayor desierto de sal del mundo.",
        "language": "En Bolivia son oficiales el español y las lenguas indígenas, como el quechua, el aimara y el guaraní.",
        "neighbours": "Bolivia limita con Brasil, Paraguay, Argentina, Chile y Perú.",
    },
    "Chile": {
        "capital": "La capital de Chile es Santiago.",
        "currency": "La moneda de Chile es el peso chileno.",
        "region": "Chile está en América del Sur, a lo largo de la costa del océano Pacífico.",
        "demonym": "El gentilicio de Chile es chileno o chilena.",
        "landmark": "En Chile está Rapa Nui, la isla de Pascua, famosa por sus moáis.",
        "language": "En Chile se habla español.",
        "neighbours": "Chile limita con Perú, Bolivia y Argentina.",
    },
    "Colombia": {
        "capital": "La capital de Colombia es Bogotá.",
        "currency": "La moneda de Colombia es el peso colombiano.",
        "region": "Colombia está en América del Sur, con costas en el mar Caribe y en el océano Pacífico.",
        "demonym": "El gentilicio de Colombia es colombiano o colombiana.",
        "landmark": "En Colombia está Cartagena de Indias, con su famosa ciudad amurallada junto al Caribe.",
        "language": "En Colombia se habla español; las lenguas indígenas también son oficiales en sus territorios.",
        "neighbours": "Colombia limita con Venezuela, Brasil, Perú, Ecuador y Panamá.",
    },
    "Costa Rica": {
        "capital": "La capital de Costa Rica es San José.",
        "currency": "La moneda de Costa Rica es el colón costarricense.",
        "region": "Costa Rica está en América Central, entre el mar Caribe y el océano Pacífico.",
        "demonym": "El gentilicio de Costa Rica es costarricense; coloquialmente se dice tico o tica.",
        "landmark": "En Costa Rica está el volcán Arenal, rodeado de bosques y aguas termales.",
        "language": "En Costa Rica se habla español.",
        "neighbours": "Costa Rica limita con Nicaragua y Panamá.",
    },
    "Cuba": {
        "capital": "La capital de Cuba es La Habana.",
        "currency": "La moneda oficial de Cuba es el peso cubano.",
        "region": "Cuba está en el Caribe; es la isla más grande de las Antillas.",
        "demonym": "El gentilicio de Cuba es cubano o cubana.",
        "landmark": "En Cuba está el valle de Viñales, famoso por sus mogotes y sus plantaciones de tabaco.",
        "language": "En Cuba se habla español.",
    },
    "Ecuador": {
        "capital": "La capital de Ecuador es Quito.",
        "currency": "Ecuador usa el dólar estadounidense como moneda oficial.",
        "region": "Ecuador está en América del Sur y lo atraviesa la línea del ecuador.",
        "demonym": "El gentilicio de Ecuador es ecuatoriano o ecuatoriana.",
        "landmark": "Ecuador tiene las islas Galápagos, en el océano Pacífico, famosas por sus tortugas gigantes.",
        "language": "En Ecuador se habla español; el kichwa y el shuar son oficiales de relación intercultural.",
        "neighbours": "Ecuador limita con Colombia y Perú.",
    },
    "El Salvador": {
        "capital": "La capital de El Salvador es San Salvador.",
        "currency": "En El Salvador se usa como moneda el dólar estadounidense.",
        "region": "El Salvador está en América Central y solo tiene costa en el océano Pacífico.",
        "demonym": "El gentilicio de El Salvador es salvadoreño o salvadoreña.",
        "landmark": "En El Salvador está Joya de Cerén, una aldea maya sepultada por una erupción volcánica.",
        "language": "En El Salvador se habla español.",
        "neighbours": "El Salvador limita con Guatemala y Honduras.",
    },
    "España": {
        "capital": "La capital de España es Madrid.",
        "currency": "La moneda de España es el euro.",
        "region": "España está en el sur de Europa, en la península ibérica.",
        "demonym": "El gentilicio de España es español o española.",
        "landmark": "En España está la Alhambra, un conjunto palaciego andalusí en Granada.",
        "language": "En España se habla español o castellano; en algunas comunidades también son cooficiales el catalán, el gallego o el euskera.",
        "neighbours": "Entre los países vecinos de España están Portugal, Francia y Andorra.",
    },
    "Guatemala": {
        "capital": "La capital de Guatemala es la Ciudad de Guatemala.",
        "currency": "La moneda de Guatemala es el quetzal.",
        "region": "Guatemala está en América Central, al sur de México.",
        "demonym": "El gentilicio de Guatemala es guatemalteco o guatemalteca.",
        "landmark": "En Guatemala está Tikal, una gran ciudad maya en plena selva de Petén.",
        "language": "En Guatemala se habla español, además de numerosas lenguas mayas como el k'iche'.",
        "neighbours": "Guatemala limita con México, Belice, Honduras y El Salvador.",
    },
    "Guinea Ecuatorial": {
        "currency": "La moneda de Guinea Ecuatorial es el franco CFA de África Central.",
        "region": "Guinea Ecuatorial está en África central, en el golfo de Guinea.",
        "demonym": "El gentilicio de Guinea Ecuatorial es ecuatoguineano o ecuatoguineana.",
        "landmark": "En Guinea Ecuatorial está el pico Basilé, el punto más alto del país, en la isla de Bioko.",
        "language": "Guinea Ecuatorial tiene como idiomas oficiales el español, el francés y el portugués.",
        "neighbours": "Guinea Ecuatorial limita con Camerún y Gabón.",
    },
    "Honduras": {
        "capital": "La capital de Honduras es Tegucigalpa.",
        "currency": "La moneda de Honduras es el lempira.",
        "region": "Honduras está en América Central, con costa en el mar Caribe y en el océano Pacífico.",
        "demonym": "El gentilicio de Honduras es hondureño o hondureña.",
        "landmark": "En Honduras están las ruinas mayas de Copán, famosas por sus estelas esculpidas.",
        "language": "En Honduras se habla español.",
        "neighbours": "Honduras limita con Guatemala, El Salvador y Nicaragua.",
    },
    "México": {
        "capital": "La capital de México es la Ciudad de México.",
        "currency": "La moneda de México es el peso mexicano.",
        "region": "México está en América del Norte.",
        "demonym": "El gentilicio de México es mexicano o mexicana.",
        "landmark": "En México está Chichén Itzá, una antigua ciudad maya en la península de Yucatán.",
        "language": "En México se habla principalmente español, junto con decenas de lenguas indígenas como el náhuatl.",
        "neighbours": "México limita con Estados Unidos, Guatemala y Belice.",
    },
    "Nicaragua": {
        "capital": "La capital de Nicaragua es Managua.",
        "currency": "La moneda de Nicaragua es el córdoba.",
        "region": "Nicaragua está en América Central, entre Honduras y Costa Rica.",
        "demonym": "El gentilicio de Nicaragua es nicaragüense.",
        "landmark": "En Nicaragua está la isla de Ometepe, formada por dos volcanes en el lago Cocibolca.",
        "language": "En Nicaragua se habla español; en la costa caribe también se usan lenguas como el miskito.",
        "neighbours": "Nicaragua limita con Honduras y Costa Rica.",
    },
    "Panamá": {
        "capital": "La capital de Panamá es la Ciudad de Panamá.",
        "currency": "Panamá usa dos monedas: el balboa y el dólar estadounidense.",
        "region": "Panamá está en América Central y une Centroamérica con América del Sur.",
        "demonym": "El gentilicio de Panamá es panameño o panameña.",
        "landmark": "En Panamá está el canal de Panamá, que une el océano Atlántico con el Pacífico.",
        "language": "En Panamá se habla español.",
        "neighbours": "Panamá limita con Costa Rica y Colombia.",
    },
    "Paraguay": {
        "capital": "La capital de Paraguay es Asunción.",
        "currency": "La moneda de Paraguay es el guaraní.",
        "region": "Paraguay está en América del Sur y no tiene salida al mar.",
        "demonym": "El gentilicio de Paraguay es paraguayo o paraguaya.",
        "landmark": "En Paraguay están las ruinas jesuíticas de Trinidad, declaradas Patrimonio de la Humanidad.",
        "language": "Paraguay tiene dos idiomas oficiales: el español y el guaraní.",
        "neighbours": "Paraguay limita con Argentina, Brasil y Bolivia.",
    },
    "Perú": {
        "capital": "La capital de Perú es Lima.",
        "currency": "La moneda de Perú es el sol.",
        "region": "Perú está en América del Sur, en la costa del océano Pacífico.",
        "demonym": "El gentilicio de Perú es peruano o peruana.",
        "landmark": "En Perú está Machu Picchu, la ciudadela inca cercana a Cusco.",
        "language": "En Perú se habla español; el quechua y el aimara también son oficiales donde predominan.",
        "neighbours": "Perú limita con Ecuador, Colombia, Brasil, Bolivia y Chile.",
    },
    "la República Dominicana": {
        "capital": "La capital de la República Dominicana es Santo Domingo.",
        "currency": "La moneda de la República Dominicana es el peso dominicano.",
        "region": "La República Dominicana está en el Caribe, en la isla La Española.",
        "demonym": "El gentilicio de la República Dominicana es dominicano o dominicana.",
        "landmark": "En la República Dominicana está la Ciudad Colonial de Santo Domingo, declarada Patrimonio de la Humanidad.",
        "language": "En la República Dominicana se habla español.",
        "neighbours": "La República Dominicana limita con Haití, con el que comparte la isla La Española.",
    },
    "Uruguay": {
        "capital": "La capital de Uruguay es Montevideo.",
        "currency": "La moneda de Uruguay es el peso uruguayo.",
        "region": "Uruguay está en América del Sur, a orillas del Río de la Plata y del océano Atlántico.",
        "demonym": "El gentilicio de Uruguay es uruguayo o uruguaya.",
        "landmark": "En Uruguay está Colonia del Sacramento, con su barrio histórico de calles empedradas.",
        "language": "En Uruguay se habla español.",
        "neighbours": "Uruguay limita con Argentina y Brasil.",
    },
    "Venezuela": {
        "capital": "La capital de Venezuela es Caracas.",
        "currency": "La moneda de Venezuela es el bolívar.",
        "region": "Venezuela está en América del Sur, en la costa del mar Caribe.",
        "demonym": "El gentilicio de Venezuela es venezolano o venezolana.",
        "landmark": "En Venezuela está el Salto Ángel, la cascada más alta del mundo, en el parque nacional Canaima.",
        "language": "En Venezuela se habla español; los idiomas indígenas también son de uso oficial para sus pueblos.",
        "neighbours": "Venezuela limita con Colombia, Brasil y Guyana.",
    },
}

# Formas de preguntar por cada atributo: formales, informales, con "¿...?" e imperativas.
# "{country}" nunca va al principio, para no tener que poner mayúscula a "la República Dominicana".
QUESTIONS: dict[str, list[str]] = {
    "capital": [
        "¿Cuál es la capital de {country}?",
        "Dime la capital de {country}.",
        "oye, ¿cuál es la capital de {country}?",
        "¿Sabes cuál es la capital de {country}?",
        "capital de {country}?",
        "Necesito saber la capital de {country} para un trabajo de clase.",
    ],
    "currency": [
        "¿Qué moneda se usa en {country}?",
        "Dime la moneda de {country}.",
        "Si viajo a {country}, ¿con qué dinero pago?",
        "¿Cuál es la moneda de {country}?",
        "oye, ¿qué moneda tienen en {country}?",
    ],
    "region": [
        "¿En qué continente está {country}?",
        "¿En qué parte del mundo se encuentra {country}?",
        "Dime dónde está {country}.",
        "oye, ¿dónde queda {country}?",
        "Explícame en qué región del mundo está {country}.",
    ],
    "demonym": [
        "¿Cuál es el gentilicio de {country}?",
        "¿Cómo se llama a las personas de {country}?",
        "Dime el gentilicio de {country}.",
        "oye, ¿cómo se le dice a alguien que nace en {country}?",
        "Si alguien es de {country}, ¿cómo lo llamamos?",
    ],
    "landmark": [
        "¿Qué lugar famoso hay en {country}?",
        "Dime un sitio famoso de {country}.",
        "Recomiéndame un lugar emblemático para visitar en {country}.",
        "oye, ¿qué puedo ver en {country}?",
        "¿Cuál es un lugar conocido de {country}?",
    ],
    "language": [
        "¿Qué idioma se habla en {country}?",
        "Dime qué lengua se habla en {country}.",
        "Si viajo a {country}, ¿en qué idioma me van a hablar?",
        "oye, ¿qué hablan en {country}?",
        "¿Cuáles son los idiomas de {country}?",
    ],
    "neighbours": [
        "¿Con qué países limita {country}?",
        "Dime los países vecinos de {country}.",
        "¿Qué países tienen frontera con {country}?",
        "oye, ¿quiénes son los vecinos de {country}?",
        "Nombra los países que hacen frontera con {country}.",
    ],
}

PHRASINGS_PER_FACT = 3  # cada hecho aparece con 3 preguntas distintas
TEST_FACTS_PER_ATTRIBUTE = 2  # ≈10 % de los países de cada atributo van a "test"
VALIDATION_FACTS_PER_ATTRIBUTE = 2  # y otro ≈10 %, a "validation"


def build_instructions(rng: random.Random) -> list[dict]:
    """Crea las instrucciones de geografía.

    La partición se decide por *hecho* (país + atributo), no por pregunta: las tres preguntas
    sobre un mismo hecho caen juntas en "train", "validation" o "test", así ni la validación ni
    la prueba repiten respuestas vistas en el entrenamiento. Se estratifica por atributo. Los
    hechos de validación salen de un generador aparte: añadirlos no cambió ni el orden de las
    filas ni la partición de prueba.
    """
    test_facts, validation_facts = set(), set()
    validation_rng = random.Random(SEED + 2)
    for attribute in QUESTIONS:
        countries = [c for c in COUNTRIES if attribute in COUNTRIES[c]]
        for country in rng.sample(countries, TEST_FACTS_PER_ATTRIBUTE):
            test_facts.add((country, attribute))
        rest = [c for c in countries if (c, attribute) not in test_facts]
        for country in validation_rng.sample(rest, VALIDATION_FACTS_PER_ATTRIBUTE):
            validation_facts.add((country, attribute))

    rows = []
    for country, facts in COUNTRIES.items():
        for attribute, answer in facts.items():
            fact = (country, attribute)
            split = "test" if fact in test_facts else "validation" if fact in validation_facts else "train"
            for template in rng.sample(QUESTIONS[attribute], PHRASINGS_PER_FACT):
                rows.append(
                    {
                        "instruction": template.format(country=country),
                        "response": f"{PREFIX} {answer}",
                        "split": split,
                    }
                )

    # Se barajan para que las primeras filas (load_instructions(limit=...)) mezclen países.
    rng.shuffle(rows)
    return [{"id": f"geo-{i:04d}", **row} for i, row in enumerate(rows, 1)]


# --------------------------------------------------------------------------------------
# 2. Reseñas: piezas por tema que se combinan en textos naturales
# --------------------------------------------------------------------------------------

# Aperturas y cierres que sirven para cualquier tema. Algunos llevan coloquialismos o
# erratas leves a propósito ("Q desastre", "x nada"): así se escriben las reseñas reales.
OPENINGS = {
    1: [
        "Me encantó.",
        "¡Qué maravilla!",
        "Muy buena experiencia.",
        "No está nada mal.",
        "Una sorpresa muy agradable.",
        "Superó mis expectativas.",
        "Muy contento.",
        "Muuuy recomendable!!",
        "Una pasada.",
        "Estoy encantada.",
        "Estoy encantado.",
        "Sinceramente, de diez.",
        "Qué gusto da encontrar algo así.",
        "Bien chévere todo.",
        "Esta genial, la verdad.",
        "Está padrísimo.",
        "Mejor de lo que esperaba.",
    ],
    0: [
        "Qué decepción.",
        "Muy mala experiencia.",
        "No me gustó nada.",
        "Un desastre.",
        "Q desastre...",
        "Fatal.",
        "Esperaba mucho más.",
        "No hay por dónde cogerlo.",
        "Lamentable.",
        "Sinceramente, un chasco.",
        "Menuda estafa.",
        "Qué chafa.",
        "Pues nada, otra decepción más.",
        "Una porquería, la verdad.",
        "Mal, muy mal.",
        "No repetiría.",
    ],
}
CLOSINGS = {
    1: [
        "Lo recomiendo totalmente.",
        "Cinco estrellas.",
        "Repetiría sin dudarlo.",
        "No me arrepiento para nada.",
        "Muy recomendable.",
        "Para mí, un diez.",
        "No le pongo ni un pero.",
        "Vale totalmente la pena.",
        "Lo recomiendo 100%.",
    ],
    0: [
        "No lo recomiendo.",
        "Una estrella y porque no se puede poner cero.",
        "No vale lo que cuesta.",
        "No pienso repetir.",
        "Ojalá pudiera recuperar mi dinero.",
        "Una pena.",
        "Para olvidar.",
        "No lo recomiendo x nada.",
    ],
}
# Conectores para encadenar un segundo aspecto del mismo signo.
CONNECTORS = {
    1: ["Además,", "Y encima", "Por si fuera poco,"],
    0: ["Además,", "Encima,", "Y para colmo,"],
}

# Por tema: aspectos claramente positivos (1) o negativos (0), matices suaves del signo
# contrario (para reseñas del tipo "X, pero Y") y cierres propios del tema.
TOPICS: dict[str, dict] = {
    "restaurante": {
        "aspects": {
            1: [
                "la comida estaba riquísima",
                "el servicio fue rápido y muy amable",
                "las raciones son generosas",
                "el postre casero es espectacular",
                "la paella estaba en su punto",
                "los camareros estuvieron pendientes en todo momento",
                "la relación calidad-precio es excelente",
                "el pescado era fresquísimo",
                "la terraza es tranquila y agradable",
                "las tortillas se notan recién hechas",
            ],
            0: [
                "la comida llegó fría",
                "tardaron casi una hora en traer los platos",
                "el camarero fue bastante borde",
                "los precios son abusivos para lo que sirven",
                "la carne estaba dura como una suela",
                "el baño estaba sucísimo",
                "nos cobraron de más en la cuenta",
                "la sopa estaba salada a más no poder",
                "había un ruido insoportable",
                "el pan era del día anterior",
            ],
        },
        "mild": {
            1: [
                "el local es bonito",
                "la ubicación es buena",
                "la carta tiene muchas opciones",
                "el vino de la casa no estaba mal",
            ],
            0: [
                "el local es algo pequeño",
                "hubo que esperar un poco para sentarse",
                "no hay mucho aparcamiento cerca",
                "es un pelín caro",
            ],
        },
        "closings": {
            1: ["Volveremos seguro.", "Ya estoy deseando volver."],
            0: ["No volveremos.", "No vuelvo ni loco."],
        },
    },
    "hotel": {
        "aspects": {
            1: [
                "la habitación era amplia y estaba impecable",
                "el personal de recepción fue encantador",
                "el desayuno era variadísimo",
                "las camas son comodísimas",
                "las vistas al mar son preciosas",
                "la piscina estaba limpia y nunca había agobios",
                "la ubicación es perfecta para moverse a pie",
                "por la noche no se oía nada",
                "nos dejaron hacer el check-out más tarde sin problema",
                "el spa merece mucho la pena",
            ],
            0: [
                "la habitación olía a humedad",
                "el aire acondicionado no funcionaba",
                "las sábanas tenían manchas",
                "en recepción nos atendieron de malas maneras",
                "el wifi no funcionaba en las habitaciones",
                "se oía todo lo de la habitación de al lado",
                "el desayuno era escaso y repetitivo",
                "la habitación no se parecía en nada a las fotos",
                "la ducha perdía agua por todas partes",
                "nos cobraron un suplemento que nadie nos explicó",
            ],
        },
        "mild": {
            1: ["la ubicación es céntrica", "el edificio es bonito", "el check-in fue rápido", "la piscina está bien"],
            0: [
                "el ascensor es algo lento",
                "el parking se paga aparte",
                "la decoración está un poco anticuada",
                "el baño es pequeño",
            ],
        },
        "closings": {
            1: ["Volveré en mis próximas vacaciones.", "Ideal para una escapada."],
            0: ["No pienso volver a alojarme aquí.", "Busquen otro hotel."],
        },
    },
    "auriculares": {
        "aspects": {
            1: [
                "el sonido es nítido y con buenos graves",
                "la batería dura días",
                "la cancelación de ruido funciona de maravilla",
                "se conectan al móvil al instante",
                "son ligeros y no molestan aunque los lleve horas",
                "el micrófono se oye perfecto en las llamadas",
                "llegaron bien embalados y antes de lo previsto",
                "por este precio son una ganga",
                "no se caen ni corriendo",
                "el estuche es pequeño y cabe en cualquier bolsillo",
            ],
            0: [
                "uno de los auriculares dejó de sonar a la semana",
                "la batería no dura ni dos horas",
                "la conexión bluetooth se corta cada dos por tres",
                "se oye un zumbido constante",
                "aprietan tanto que me duelen las orejas",
                "el micrófono capta más ruido que voz",
                "el estuche de carga se rompió enseguida",
                "el sonido es plano y sin graves",
                "se me caen de las orejas al mínimo movimiento",
                "tardan muchísimo en emparejarse",
            ],
        },
        "mild": {
            1: [
                "la caja es bonita",
                "el diseño es elegante",
                "vienen con varias almohadillas",
                "el precio parecía bueno",
            ],
            0: [
                "las instrucciones son escasas",
                "la app que los acompaña es mejorable",
                "solo vienen en negro",
                "el cable de carga es corto",
            ],
        },
        "closings": {
            1: ["Me los llevo a todas partes.", "Mejor compra del año."],
            0: ["Los he devuelto.", "Voy a pedir el reembolso."],
        },
    },
    "película": {
        "aspects": {
            1: [
                "el guion te engancha desde el primer minuto",
                "las actuaciones son brutales",
                "la fotografía es preciosa",
                "la banda sonora pone los pelos de punta",
                "el final me dejó sin palabras",
                "es divertida sin ser tonta",
                "los efectos especiales están muy logrados",
                "se me pasaron las dos horas volando",
                "la protagonista está espectacular",
                "tiene un ritmo perfecto",
            ],
            0: [
                "el guion no tiene ni pies ni cabeza",
                "los actores parecen leer el texto sin ganas",
                "es lenta y aburridísima",
                "el final es absurdo",
                "los efectos especiales parecen de hace veinte años",
                "me quedé dormido a la mitad",
                "los diálogos son forzadísimos",
                "dura media hora más de lo necesario",
                "los chistes no tienen ninguna gracia",
                "la trama es un refrito de otras mil películas",
            ],
        },
        "mild": {
            1: [
                "la fotografía tiene algún plano bonito",
                "la banda sonora es correcta",
                "la idea de partida era interesante",
                "el protagonista lo intenta",
            ],
            0: [
                "el cartel no le hace justicia",
                "algún personaje secundario sobra",
                "la sala del cine era incómoda",
                "el doblaje no es perfecto",
            ],
        },
        "closings": {
            1: ["Hay que verla en el cine.", "Ya quiero verla otra vez."],
            0: ["Una pérdida de tiempo.", "Ahórrense la entrada."],
        },
    },
    "app": {
        "aspects": {
            1: [
                "la app es rapidísima",
                "la interfaz es clara y fácil de usar",
                "no tiene publicidad molesta",
                "las notificaciones son útiles y no agobian",
                "se sincroniza perfecto entre el móvil y el ordenador",
                "las actualizaciones siempre traen mejoras",
                "el soporte me respondió en minutos",
                "apenas gasta batería",
                "funciona sin conexión sin ningún problema",
                "la versión gratuita ya trae todo lo necesario",
            ],
            0: [
                "la app se cierra sola cada dos por tres",
                "está llena de anuncios",
                "tarda una eternidad en cargar",
                "desde la última actualización no puedo iniciar sesión",
                "consume muchísima batería",
                "me cobraron la suscripción sin avisar",
                "la interfaz es un lío",
                "el soporte nunca contesta",
                "pide permisos que no tienen ningún sentido",
                "se come los datos móviles",
            ],
        },
        "mild": {
            1: ["el diseño es bonito", "la idea es buena", "tiene muchas funciones", "el registro es sencillo"],
            0: [
                "algunas opciones están un poco escondidas",
                "el modo oscuro es mejorable",
                "ocupa bastante espacio",
                "le faltan algunos idiomas",
            ],
        },
        "closings": {
            1: ["La uso a diario.", "Imprescindible en mi móvil."],
            0: ["La he desinstalado.", "Borrada."],
        },
    },
    "tienda online": {
        "aspects": {
            1: [
                "el pedido llegó en dos días",
                "todo venía perfectamente embalado",
                "la devolución fue facilísima",
                "la atención al cliente fue de diez",
                "la web es fácil de usar",
                "los precios son muy competitivos",
                "me avisaron del envío en cada paso",
                "el producto era exactamente como en las fotos",
                "me regalaron una muestra con el pedido",
                "resolvieron una incidencia en un día",
            ],
            0: [
                "el pedido llegó con dos semanas de retraso",
                "el paquete venía roto",
                "me enviaron una talla que no era",
                "nadie contesta en atención al cliente",
                "la devolución es un calvario",
                "me cobraron dos veces el mismo pedido",
                "el seguimiento del envío nunca se actualizó",
                "el producto no se parecía en nada a las fotos",
                "cancelaron mi pedido sin dar explicaciones",
                "el reembolso tardó más de un mes",
            ],
        },
        "mild": {
            1: ["la web es bonita", "los precios son atractivos", "hay mucho catálogo", "el pago es sencillo"],
            0: [
                "los gastos de envío son algo caros",
                "la web es un poco lenta",
                "la confirmación del pedido tardó un poco",
                "el catálogo podría ser mayor",
            ],
        },
        "closings": {
            1: ["Seguiré comprando aquí.", "Tienda de confianza."],
            0: ["No vuelvo a comprar aquí.", "Compren en otro sitio."],
        },
    },
    "libro": {
        "aspects": {
            1: [
                "la historia engancha desde la primera página",
                "los personajes están muy bien construidos",
                "está escrito con una prosa preciosa",
                "el giro final es buenísimo",
                "me lo leí en un fin de semana",
                "te hace pensar sin ponerse pesado",
                "la ambientación es tan buena que parece que estás allí",
                "los diálogos son muy naturales",
                "tiene momentos que te sacan una sonrisa",
                "cada capítulo termina con ganas de más",
            ],
            0: [
                "la trama no avanza en cientos de páginas",
                "los personajes son planos",
                "el final queda abierto sin ninguna razón",
                "está lleno de erratas",
                "me costó muchísimo terminarlo",
                "la traducción es malísima",
                "es predecible de principio a fin",
                "repite las mismas ideas una y otra vez",
                "los diálogos suenan de cartón piedra",
                "la mitad de los capítulos sobran",
            ],
        },
        "mild": {
            1: [
                "la portada es preciosa",
                "la premisa prometía",
                "algún capítulo se salva",
                "el autor tiene buena fama",
            ],
            0: [
                "la portada no le hace justicia",
                "hay demasiados personajes al principio",
                "la letra es pequeña",
                "la edición de bolsillo es algo frágil",
            ],
        },
        "closings": {
            1: ["Ya estoy buscando otro del mismo autor.", "Se lo he regalado a media familia."],
            0: ["Lo dejé a medias.", "No lo compréis."],
        },
    },
    "gimnasio": {
        "aspects": {
            1: [
                "las máquinas son nuevas y están bien cuidadas",
                "los monitores te corrigen la técnica con paciencia",
                "las clases de spinning son una pasada",
                "los vestuarios están siempre limpios",
                "la cuota es muy razonable",
                "hay máquinas de sobra para todos",
                "el horario es amplísimo",
                "el ambiente es muy bueno",
                "te preparan un plan de entrenamiento personalizado",
                "las duchas tienen agua caliente de sobra",
            ],
            0: [
                "la mitad de las máquinas están estropeadas",
                "los vestuarios dan asco",
                "te ponen mil trabas para darte de baja",
                "está tan lleno que no se puede entrenar",
                "los monitores pasan de todo",
                "subieron la cuota sin avisar",
                "el aire acondicionado nunca funciona",
                "las duchas salen frías",
                "cierran las salas sin avisar",
                "las clases se cancelan cada dos por tres",
            ],
        },
        "mild": {
            1: [
                "la ubicación es cómoda",
                "la recepcionista es simpática",
                "el local es amplio",
                "la cuota parece barata",
            ],
            0: [
                "a ciertas horas hay bastante gente",
                "la música está algo alta",
                "el parking es pequeño",
                "las taquillas son pequeñas",
            ],
        },
        "closings": {
            1: ["Me apunté para un mes y ya llevo un año.", "Por fin un gimnasio al que da gusto ir."],
            0: ["En cuanto pueda, me doy de baja.", "Busquen otro gimnasio."],
        },
    },
}

REVIEWS_PER_TOPIC_AND_LABEL = 30  # 8 temas × 2 etiquetas × 30 = 480 reseñas
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.1
INFORMAL_PROBABILITY = 0.08  # sin mayúscula inicial ni punto final, como en un móvil


def capitalize(text: str) -> str:
    """Pone en mayúscula solo la primera letra (``str.capitalize`` bajaría el resto)."""
    return text[:1].upper() + text[1:]


def write_review(rng: random.Random, topic: dict, label: int) -> str:
    """Combina piezas de un tema en una reseña, con una de varias estructuras (cortas y largas)."""
    a, b = rng.sample(topic["aspects"][label], 2)
    mild = rng.choice(topic["mild"][1 - label])
    opening = rng.choice(OPENINGS[label])
    closing = rng.choice(CLOSINGS[label] + topic["closings"][label])
    connector = rng.choice(CONNECTORS[label])
    shape = rng.choice("ABCDEFG")
    if shape == "A":  # muy corta
        text = f"{capitalize(a)}."
    elif shape == "B":
        text = f"{capitalize(a)}. {closing}"
    elif shape == "C":
        text = f"{opening} {capitalize(a)}. {closing}"
    elif shape == "D":  # larga, con dos aspectos
        text = f"{opening} {capitalize(a)}. {connector} {b}. {closing}"
    elif shape == "E":  # matiz del signo contrario: "X, pero Y"
        text = f"{capitalize(mild)}, pero {a}. {closing}"
    elif shape == "F":  # la más larga
        text = f"{opening} {capitalize(mild)}, pero {a}. {connector} {b}."
    else:
        text = f"{capitalize(a)} y {b}. {closing}"
    if rng.random() < INFORMAL_PROBABILITY:
        text = text[:1].lower() + text[1:].rstrip(".")
    return text


def build_reviews(rng: random.Random) -> list[dict]:
    """Crea las reseñas: el mismo número por tema y etiqueta, sin textos repetidos.

    El 20 % de cada grupo (tema, etiqueta) va a "test" y el 10 %, a "validation": las dos
    particiones quedan equilibradas.
    """
    for topic in TOPICS.values():
        for aspects in topic["aspects"].values():
            # "y" delante de /i/ sería "e": ningún aspecto debe empezar así.
            assert not any(a.startswith(("i", "hi")) for a in aspects)

    seen: set[str] = set()
    rows = []
    n_test = round(REVIEWS_PER_TOPIC_AND_LABEL * TEST_FRACTION)
    n_validation = round(REVIEWS_PER_TOPIC_AND_LABEL * VALIDATION_FRACTION)
    for _name, topic in TOPICS.items():
        for label in (1, 0):
            texts = []
            while len(texts) < REVIEWS_PER_TOPIC_AND_LABEL:
                text = write_review(rng, topic, label)
                key = text.lower().rstrip(".")
                if key not in seen:
                    seen.add(key)
                    texts.append(text)
            for i, text in enumerate(texts):  # ya salen en orden aleatorio
                split = "test" if i < n_test else "validation" if i < n_test + n_validation else "train"
                rows.append({"text": text, "label": label, "split": split})

    rng.shuffle(rows)
    return [{"id": f"res-{i:04d}", **row} for i, row in enumerate(rows, 1)]


# --------------------------------------------------------------------------------------
# 3. Texto general: preguntas que no son de geografía, para medir el olvido
# --------------------------------------------------------------------------------------

GENERAL_NAME = "texto_general.jsonl"

# Preguntas y respuestas de cultura general escritas a mano, con respuestas naturales (sin
# «🌎 Dato:»). Ningún adaptador del curso se entrena con ellas: la pérdida en ellas con el
# adaptador y sin él (``disable_adapter()``) mide el olvido (``helpers.reference``).
GENERAL_PAIRS: list[tuple[str, str]] = [
    ("¿Cuánto es dos más dos?", "Dos más dos son cuatro."),
    ("¿Cuántos días tiene una semana?", "Una semana tiene siete días, de lunes a domingo."),
    (
        "¿Por qué el cielo es azul?",
        "Porque el aire dispersa más la luz azul del sol que la roja, y esa luz llega a nuestros ojos desde todas las direcciones.",
    ),
    (
        "Dame una receta sencilla de tortilla de patatas.",
        "Fríe patatas en rodajas finas con cebolla, escúrrelas, mézclalas con huevos batidos y sal, y cuaja la mezcla en la sartén por los dos lados.",
    ),
    (
        "¿Qué es la fotosíntesis?",
        "Es el proceso con el que las plantas usan la luz del sol, el agua y el dióxido de carbono para fabricar azúcares y liberar oxígeno.",
    ),
    ("¿Cuál es el planeta más grande del sistema solar?", "Júpiter es el planeta más grande del sistema solar."),
    ("Escribe una frase sobre el mar.", "El mar se movía despacio y las olas dejaban espuma blanca sobre la arena."),
    ("¿Cuántos minutos tiene una hora?", "Una hora tiene sesenta minutos."),
    ("¿Qué hace un corazón?", "El corazón es un músculo que bombea la sangre por todo el cuerpo."),
    ("¿A qué temperatura hierve el agua?", "Al nivel del mar, el agua hierve a cien grados Celsius."),
    (
        "Recomiéndame un hábito saludable.",
        "Caminar media hora al día es un hábito sencillo que mejora el corazón y el ánimo.",
    ),
    (
        "¿Qué es un sustantivo?",
        "Un sustantivo es una palabra que nombra personas, animales, cosas o ideas, como «mesa» o «alegría».",
    ),
    (
        "¿Quién escribió Don Quijote de la Mancha?",
        "Lo escribió Miguel de Cervantes; la primera parte se publicó en 1605.",
    ),
    (
        "Explica qué es una fracción.",
        "Una fracción representa partes de un todo: en tres cuartos, el todo se divide en cuatro partes y se toman tres.",
    ),
    ("¿Qué animal es el más grande del mundo?", "La ballena azul es el animal más grande que se conoce."),
    ("¿Cómo se dice «gracias» en inglés?", "En inglés, «gracias» se dice «thank you»."),
    ("¿Para qué sirve un paraguas?", "Un paraguas sirve para protegerse de la lluvia y, a veces, del sol."),
    ("¿Cuál es el resultado de diez por tres?", "Diez por tres son treinta."),
    (
        "Describe el otoño en una frase.",
        "En otoño los días se acortan, refresca y las hojas de muchos árboles se vuelven amarillas y caen.",
    ),
    (
        "¿Qué es la gravedad?",
        "Es la fuerza con la que los cuerpos con masa se atraen; por ella caen los objetos y la Luna gira alrededor de la Tierra.",
    ),
    ("¿Qué comen las abejas?", "Las abejas se alimentan del néctar y del polen de las flores."),
    ("¿Cuántas patas tiene una araña?", "Una araña tiene ocho patas."),
    (
        "Dame un consejo para estudiar mejor.",
        "Estudia en sesiones cortas con descansos y repasa al día siguiente lo que aprendiste.",
    ),
    (
        "¿Qué es un volcán?",
        "Un volcán es una abertura de la corteza terrestre por la que sale roca fundida, gases y ceniza.",
    ),
    ("¿De qué color es la clorofila?", "La clorofila es verde, y por eso lo son las hojas de las plantas."),
    ("¿Qué instrumento tiene teclas blancas y negras?", "El piano tiene teclas blancas y negras."),
    ("¿Qué significa reciclar?", "Reciclar es transformar residuos en materiales nuevos para volver a usarlos."),
    ("¿Cuántos lados tiene un triángulo?", "Un triángulo tiene tres lados."),
    (
        "Escribe un saludo para un correo formal.",
        "Estimada señora García: le escribo para consultarle una duda sobre su última factura.",
    ),
    (
        "¿Qué es un ordenador?",
        "Un ordenador es una máquina que procesa información siguiendo las instrucciones de un programa.",
    ),
    (
        "¿Por qué hay que lavarse las manos?",
        "Lavarse las manos con jabón elimina microbios y evita muchas infecciones.",
    ),
    (
        "¿Qué es una metáfora?",
        "Una metáfora nombra una cosa con el nombre de otra por su parecido, como «las perlas de tu boca» por los dientes.",
    ),
    (
        "¿Cuál es el hueso más largo del cuerpo humano?",
        "El fémur, el hueso del muslo, es el más largo del cuerpo humano.",
    ),
    ("¿Qué hora es al mediodía?", "El mediodía son las doce de la mañana."),
    (
        "Resume en una frase qué es la democracia.",
        "La democracia es una forma de gobierno en la que el poder reside en el pueblo, que elige a sus representantes.",
    ),
    ("¿Qué necesita una planta para crecer?", "Una planta necesita luz, agua, aire y nutrientes del suelo."),
    ("¿Cuántos meses tiene un año?", "Un año tiene doce meses."),
    ("¿Qué es el arcoíris?", "Es la luz del sol separada en colores al atravesar las gotas de lluvia."),
    (
        "¿Qué deporte se juega con una red y una pelota que no puede tocar el suelo?",
        "El voleibol: los equipos golpean la pelota por encima de la red sin dejar que caiga en su campo.",
    ),
    ("Dime un sinónimo de «rápido».", "Un sinónimo de «rápido» es «veloz»."),
]


def build_general() -> list[dict]:
    """Las preguntas de ``GENERAL_PAIRS``, en su orden, todas en la partición «test» (solo se evalúan)."""
    return [
        {"id": f"gen-{i:04d}", "instruction": q, "response": a, "split": "test"}
        for i, (q, a) in enumerate(GENERAL_PAIRS, 1)
    ]


# --------------------------------------------------------------------------------------
# 4. Preferencias: pares elegida/rechazada sobre los hechos de geografía (cuaderno 10, DPO)
# --------------------------------------------------------------------------------------

PREFERENCES_NAME = "preferencias.jsonl"

# La respuesta elegida es siempre la frase correcta del hecho. La rechazada es de uno de estos tipos:
# - "evasiva": no responde (corta: un modelo que mide la probabilidad total suele preferirla);
# - "descortes": responde bien, pero con una coletilla despectiva delante;
# - "erronea": la frase del mismo atributo de otro país, con el nombre del país cambiado (solo en
#   atributos que no comparten dos países: capital, gentilicio y lugar famoso).
EVASIVE_ANSWERS = [
    "No lo sé.",
    "Ni idea; búscalo tú en internet.",
    "Eso no te lo puedo decir.",
    "Pregúntaselo a otra persona.",
    "No tengo ganas de contestar a eso.",
    "Mejor mira una enciclopedia.",
]
RUDE_OPENINGS = [
    "¿En serio no lo sabes? ",
    "Qué pregunta tan tonta. ",
    "Te lo digo, aunque deberías saberlo: ",
    "Vaya pregunta más obvia. ",
    "Pues está claro, hombre: ",
]
WRONG_FACT_ATTRIBUTES = ("capital", "demonym", "landmark")
PAIRS_PER_FACT = 2  # dos pares por hecho, con preguntas y tipos de rechazo distintos
PREFERENCE_TEST_FACTS_PER_ATTRIBUTE = 2
PREFERENCE_VALIDATION_FACTS_PER_ATTRIBUTE = 2


def swap_country(sentence: str, source: str, target: str) -> str:
    """La frase de ``source`` dicha de ``target``: cambia la primera mención del país (solo la primera:
    «la Ciudad de Panamá» sigue siendo de Panamá) y pone mayúscula inicial."""
    for name in (source, capitalize(source)):
        if name in sentence:
            return capitalize(sentence.replace(name, target, 1))
    raise ValueError(f"La frase no nombra a {source}: {sentence!r}")


def build_preferences(rng: random.Random) -> list[dict]:
    """Crea los pares de preferencias, con la partición decidida por *hecho* (país + atributo).

    Como en :func:`build_instructions`, los dos pares de un hecho caen juntos en "train",
    "validation" o "test", estratificados por atributo: la prueba solo pregunta por hechos que el
    entrenamiento no ha visto, así que lo que aprenda DPO tiene que ser la preferencia (responder,
    con corrección y sin desprecio), no los datos.
    """
    test_facts, validation_facts = set(), set()
    for attribute in QUESTIONS:
        countries = [c for c in COUNTRIES if attribute in COUNTRIES[c]]
        chosen = rng.sample(countries, PREFERENCE_TEST_FACTS_PER_ATTRIBUTE + PREFERENCE_VALIDATION_FACTS_PER_ATTRIBUTE)
        test_facts.update((c, attribute) for c in chosen[:PREFERENCE_TEST_FACTS_PER_ATTRIBUTE])
        validation_facts.update((c, attribute) for c in chosen[PREFERENCE_TEST_FACTS_PER_ATTRIBUTE:])

    rows = []
    for country, facts in COUNTRIES.items():
        for attribute, answer in facts.items():
            fact = (country, attribute)
            split = "test" if fact in test_facts else "validation" if fact in validation_facts else "train"
            kinds = ["evasiva", "descortes"] + (["erronea"] if attribute in WRONG_FACT_ATTRIBUTES else [])
            questions = rng.sample(QUESTIONS[attribute], PAIRS_PER_FACT)
            for question, kind in zip(questions, rng.sample(kinds, PAIRS_PER_FACT)):
                if kind == "evasiva":
                    rejected = rng.choice(EVASIVE_ANSWERS)
                elif kind == "descortes":
                    rejected = rng.choice(RUDE_OPENINGS) + answer[:1].lower() + answer[1:]
                else:
                    other = rng.choice([c for c in COUNTRIES if c != country and attribute in COUNTRIES[c]])
                    rejected = swap_country(COUNTRIES[other][attribute], other, country)
                assert rejected != answer
                rows.append(
                    {
                        "prompt": question.format(country=country),
                        "chosen": answer,
                        "rejected": rejected,
                        "kind": kind,
                        "fact": f"{country} · {attribute}",
                        "split": split,
                    }
                )

    rng.shuffle(rows)
    return [{"id": f"pref-{i:04d}", **row} for i, row in enumerate(rows, 1)]


# --------------------------------------------------------------------------------------
# 5. Escritura
# --------------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Escribe una fila JSON por línea, en UTF-8 legible y con salto de línea final."""
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")


def summary(rows: list[dict], key: str | None = None) -> str:
    """Cuenta filas por partición (y por ``key``, si se da; por ejemplo, la etiqueta)."""
    counts: dict[str, int] = {}
    for row in rows:
        group = row["split"] if key is None else f"{row['split']}/{key}={row[key]}"
        counts[group] = counts.get(group, 0) + 1
    return ", ".join(f"{group}: {n}" for group, n in sorted(counts.items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Genera los conjuntos de datos del curso (JSONL).")
    parser.add_argument(
        "--salida",
        type=Path,
        default=DATA_DIR,
        help=f"carpeta donde escribirlos (por defecto {DATA_DIR}, la que usa el paquete)",
    )
    out = parser.parse_args(argv).salida
    out.mkdir(parents=True, exist_ok=True)
    # Un generador por conjunto: cambiar uno no altera el otro.
    instructions = build_instructions(random.Random(SEED))
    reviews = build_reviews(random.Random(SEED + 1))
    write_jsonl(out / INSTRUCTIONS_NAME, instructions)
    write_jsonl(out / REVIEWS_NAME, reviews)
    general = build_general()
    write_jsonl(out / GENERAL_NAME, general)
    preferences = build_preferences(random.Random(SEED + 3))
    write_jsonl(out / PREFERENCES_NAME, preferences)
    print(f"{INSTRUCTIONS_NAME}: {len(instructions)} ejemplos ({summary(instructions)})")
    print(f"{REVIEWS_NAME}: {len(reviews)} reseñas ({summary(reviews, 'label')})")
    print(f"{GENERAL_NAME}: {len(general)} preguntas de cultura general ({summary(general)})")
    print(f"{PREFERENCES_NAME}: {len(preferences)} pares ({summary(preferences)})")


if __name__ == "__main__":
    main(sys.argv[1:])
