"""Hand-written word tables and sentence templates of the synthetic tasks.

Eight languages, four scripts (Latin, Han, Devanagari, Arabic, Cyrillic). The
vocabulary is kept tiny and the grammar regular so every ground-truth string is
a deterministic function of the scene: colours x shapes with the agreement
each language needs (German and Arabic nouns have gender; Hindi adjectives
agree with the feminine noun 'वस्तु'), number words, yes/no, and per-language
templates for captions, alt-text and questions.
"""

import dataclasses

from pali_pax.core import errors

LANGS: tuple[str, ...] = ('en', 'fr', 'de', 'es', 'zh', 'hi', 'ar', 'ru')

COLOURS: tuple[str, ...] = ('red', 'green', 'blue', 'yellow', 'white')
SHAPES: tuple[str, ...] = ('circle', 'square', 'triangle')

# RGB of each colour as drawn; far apart so a tiny model separates them.
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
  'red': (220, 40, 40),
  'green': (40, 180, 60),
  'blue': (40, 80, 220),
  'yellow': (240, 220, 40),
  'white': (245, 245, 245),
}
BACKGROUND_RGB = (110, 110, 110)  # the alt-text says "gray background"
TEXT_RGB = ((20, 20, 20), (250, 250, 250))  # OCR text: black or white

# Words rendered for OCR (Latin script: PIL's default font draws it at any size).
OCR_WORDS: tuple[str, ...] = (
  'cat', 'dog', 'sun', 'sky', 'map', 'box', 'pen', 'cup', 'tea', 'bus',
  'chat', 'sol', 'mar', 'haus', 'baum', 'rot', 'vert', 'bleu', 'luz', 'casa',
  'gato', 'pali', 'jax', 'pax', 'mt5', 'vit', 'ocr', 'star', 'moon', 'lac',
  'rio', 'ja', 'oui', 'si', 'no', 'open', 'stop', 'exit', 'taxi', 'cafe',
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class LanguageTable:
  """Words and templates of one language.

  Attributes:
    colour: answer form of each colour ('red').
    shape: bare noun of each shape (answer and detection label).
    shape_def: definite noun phrase used in 'What colour is <shape_def>?'.
    numbers: number words 1..4 (counting answers).
    yes: / no: answers of yes/no questions.
    and_: template joining two noun phrases ('{a} and {b}').
    alt_text: alt-text template around the objects ('... : {objs}').
    q_colour: 'What colour is {shape_def}?'
    q_shape: 'What shape is the {colour} object?' ({colour} in the agreeing form).
    q_count: 'How many shapes are in the image?'
    q_presence: 'Is there {np} in the image?'
  """

  colour: dict[str, str]
  shape: dict[str, str]
  shape_def: dict[str, str]
  numbers: tuple[str, ...]
  yes: str
  no: str
  and_: str
  alt_text: str
  q_colour: str
  q_shape: str
  q_count: str
  q_presence: str


_DE_STEM = {'red': 'rot', 'green': 'grün', 'blue': 'blau', 'yellow': 'gelb', 'white': 'weiß'}
_DE_GENDER = {'circle': 'm', 'square': 'n', 'triangle': 'n'}
_AR_FEM = {'red': 'حمراء', 'green': 'خضراء', 'blue': 'زرقاء', 'yellow': 'صفراء', 'white': 'بيضاء'}
_AR_GENDER = {'circle': 'f', 'square': 'm', 'triangle': 'm'}
_HI_FEM = {'red': 'लाल', 'green': 'हरी', 'blue': 'नीली', 'yellow': 'पीली', 'white': 'सफ़ेद'}

TABLES: dict[str, LanguageTable] = {
  'en': LanguageTable(
    colour={c: c for c in COLOURS},
    shape={s: s for s in SHAPES},
    shape_def={s: f'the {s}' for s in SHAPES},
    numbers=('one', 'two', 'three', 'four'),
    yes='yes',
    no='no',
    and_='{a} and {b}',
    alt_text='photo on a gray background: {objs}',
    q_colour='What colour is {shape_def}?',
    q_shape='What shape is the {colour} object?',
    q_count='How many shapes are in the image?',
    q_presence='Is there {np} in the image?',
  ),
  'fr': LanguageTable(
    colour={'red': 'rouge', 'green': 'vert', 'blue': 'bleu', 'yellow': 'jaune', 'white': 'blanc'},
    shape={'circle': 'cercle', 'square': 'carré', 'triangle': 'triangle'},
    shape_def={'circle': 'le cercle', 'square': 'le carré', 'triangle': 'le triangle'},
    numbers=('un', 'deux', 'trois', 'quatre'),
    yes='oui',
    no='non',
    and_='{a} et {b}',
    alt_text='photo sur fond gris : {objs}',
    q_colour='De quelle couleur est {shape_def} ?',
    q_shape="Quelle est la forme de l'objet {colour} ?",
    q_count="Combien de formes y a-t-il dans l'image ?",
    q_presence="Y a-t-il {np} dans l'image ?",
  ),
  'de': LanguageTable(
    colour=dict(_DE_STEM),
    shape={'circle': 'Kreis', 'square': 'Quadrat', 'triangle': 'Dreieck'},
    shape_def={'circle': 'der Kreis', 'square': 'das Quadrat', 'triangle': 'das Dreieck'},
    numbers=('eins', 'zwei', 'drei', 'vier'),
    yes='ja',
    no='nein',
    and_='{a} und {b}',
    alt_text='Foto auf grauem Hintergrund: {objs}',
    q_colour='Welche Farbe hat {shape_def}?',
    q_shape='Welche Form hat das {colour} Objekt?',
    q_count='Wie viele Formen sind im Bild?',
    q_presence='Ist {np} im Bild?',
  ),
  'es': LanguageTable(
    colour={
      'red': 'rojo',
      'green': 'verde',
      'blue': 'azul',
      'yellow': 'amarillo',
      'white': 'blanco',
    },
    shape={'circle': 'círculo', 'square': 'cuadrado', 'triangle': 'triángulo'},
    shape_def={'circle': 'el círculo', 'square': 'el cuadrado', 'triangle': 'el triángulo'},
    numbers=('uno', 'dos', 'tres', 'cuatro'),
    yes='sí',
    no='no',
    and_='{a} y {b}',
    alt_text='foto sobre fondo gris: {objs}',
    q_colour='¿De qué color es {shape_def}?',
    q_shape='¿Qué forma tiene el objeto {colour}?',
    q_count='¿Cuántas formas hay en la imagen?',
    q_presence='¿Hay {np} en la imagen?',
  ),
  'zh': LanguageTable(
    colour={'red': '红色', 'green': '绿色', 'blue': '蓝色', 'yellow': '黄色', 'white': '白色'},
    shape={'circle': '圆形', 'square': '正方形', 'triangle': '三角形'},
    shape_def={'circle': '圆形', 'square': '正方形', 'triangle': '三角形'},
    numbers=('一', '两', '三', '四'),
    yes='有',
    no='没有',
    and_='{a}和{b}',
    alt_text='灰色背景上的照片：{objs}',
    q_colour='{shape_def}是什么颜色的？',
    q_shape='{colour}的物体是什么形状？',
    q_count='图中有几个形状？',
    q_presence='图中有{np}吗？',
  ),
  'hi': LanguageTable(
    colour={'red': 'लाल', 'green': 'हरा', 'blue': 'नीला', 'yellow': 'पीला', 'white': 'सफ़ेद'},
    shape={'circle': 'वृत्त', 'square': 'वर्ग', 'triangle': 'त्रिभुज'},
    shape_def={'circle': 'वृत्त', 'square': 'वर्ग', 'triangle': 'त्रिभुज'},
    numbers=('एक', 'दो', 'तीन', 'चार'),
    yes='हाँ',
    no='नहीं',
    and_='{a} और {b}',
    alt_text='धूसर पृष्ठभूमि पर फ़ोटो: {objs}',
    q_colour='{shape_def} का रंग क्या है?',
    q_shape='{colour} वस्तु का आकार क्या है?',
    q_count='चित्र में कितनी आकृतियाँ हैं?',
    q_presence='क्या चित्र में {np} है?',
  ),
  'ar': LanguageTable(
    colour={'red': 'أحمر', 'green': 'أخضر', 'blue': 'أزرق', 'yellow': 'أصفر', 'white': 'أبيض'},
    shape={'circle': 'دائرة', 'square': 'مربع', 'triangle': 'مثلث'},
    shape_def={'circle': 'الدائرة', 'square': 'المربع', 'triangle': 'المثلث'},
    numbers=('واحد', 'اثنان', 'ثلاثة', 'أربعة'),
    yes='نعم',
    no='لا',
    and_='{a} و{b}',
    alt_text='صورة على خلفية رمادية: {objs}',
    q_colour='ما لون {shape_def}؟',
    q_shape='ما شكل الجسم {colour}؟',
    q_count='كم شكلا في الصورة؟',
    q_presence='هل في الصورة {np}؟',
  ),
  'ru': LanguageTable(
    colour={
      'red': 'красный',
      'green': 'зелёный',
      'blue': 'синий',
      'yellow': 'жёлтый',
      'white': 'белый',
    },
    shape={'circle': 'круг', 'square': 'квадрат', 'triangle': 'треугольник'},
    shape_def={'circle': 'круг', 'square': 'квадрат', 'triangle': 'треугольник'},
    numbers=('один', 'два', 'три', 'четыре'),
    yes='да',
    no='нет',
    and_='{a} и {b}',
    alt_text='фото на сером фоне: {objs}',
    q_colour='Какого цвета {shape_def}?',
    q_shape='Какой формы {colour} объект?',
    q_count='Сколько фигур на картинке?',
    q_presence='Есть ли на картинке {np}?',
  ),
}


def table(lang: str) -> LanguageTable:
  """The word table of `lang`; ValueError listing the synthetic languages."""
  if lang not in TABLES:
    raise errors.InputValidationError(
      f'No synthetic word table for {lang!r}; synthetic languages: {", ".join(LANGS)}'
    )
  return TABLES[lang]


def noun_phrase(lang: str, colour: str, shape: str) -> str:
  """Indefinite 'a red circle' with the agreement of `lang` (nominative)."""
  t = table(lang)
  c, s = t.colour[colour], t.shape[shape]
  if lang == 'en':
    return f'a {c} {s}'
  if lang in ('fr', 'es'):  # all three nouns are masculine
    return f'un {s} {c}'
  if lang == 'de':  # strong adjective ending after 'ein': roter Kreis, rotes Quadrat
    return f'ein {c}{"er" if _DE_GENDER[shape] == "m" else "es"} {s}'
  if lang == 'zh':
    return f'一个{c}的{s}'
  if lang == 'hi':
    return f'एक {c} {s}'
  if lang == 'ar':  # adjective follows the noun and agrees in gender
    return f'{s} {_AR_FEM[colour] if _AR_GENDER[shape] == "f" else c}'
  return f'{c} {s}'  # ru: all three nouns are masculine


def object_colour(lang: str, colour: str) -> str:
  """The colour as it agrees with the word 'object' in q_shape."""
  c = table(lang).colour[colour]
  if lang == 'de':
    return f'{c}e'  # weak ending after 'das': das rote Objekt
  if lang == 'hi':
    return _HI_FEM[colour]  # 'वस्तु' is feminine
  if lang == 'ar':
    return f'ال{c}'  # definite adjective: الجسم الأحمر
  return c
