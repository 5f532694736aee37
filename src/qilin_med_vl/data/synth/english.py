"""The English phrase book of the synthetic world: what the public-format source files say."""

from __future__ import annotations

from qilin_med_vl.data.synth.findings import (
    ABDOMINAL_CT,
    CHEST_XRAY,
    HEAD_CT,
    HISTOLOGY,
    LARGE,
    LEFT,
    LOWER,
    MODALITY_QUESTION,
    NO,
    PRESENCE_QUESTION,
    REGION_QUESTION,
    RIGHT,
    SIDE_QUESTION,
    SIZE_QUESTION,
    SMALL,
    ULTRASOUND,
    UPPER,
    YES,
)
from qilin_med_vl.data.synth.language import PhraseBook
from qilin_med_vl.data.synth.real import REAL_CT, REAL_MRI, REAL_ULTRASOUND, REAL_XRAY

ENGLISH = PhraseBook(
    modality_answer={
        CHEST_XRAY: "Chest X-ray",
        HEAD_CT: "Head CT",
        ABDOMINAL_CT: "Abdominal CT",
        ULTRASOUND: "Ultrasound",
        HISTOLOGY: "Histology",
    },
    modality_phrase={
        CHEST_XRAY: "chest X-ray",
        HEAD_CT: "axial head CT",
        ABDOMINAL_CT: "axial abdominal CT",
        ULTRASOUND: "ultrasound image",
        HISTOLOGY: "H&E-stained histology section",
    },
    lesion={
        CHEST_XRAY: "mass",
        HEAD_CT: "hyperdense lesion",
        ABDOMINAL_CT: "hypodense mass",
        ULTRASOUND: "hypoechoic lesion",
        HISTOLOGY: "tumor cell nest",
    },
    answers={
        YES: "Yes",
        NO: "No",
        LEFT: "Left",
        RIGHT: "Right",
        UPPER: "Upper",
        LOWER: "Lower",
        SMALL: "Small",
        LARGE: "Large",
    },
    distractors={
        PRESENCE_QUESTION: ("Uncertain", "Not assessable"),
        SIDE_QUESTION: ("Both sides", "Midline"),
        REGION_QUESTION: ("Middle", "Diffuse"),
        SIZE_QUESTION: ("Medium", "Not measurable"),
    },
    size_adjective={SMALL: "small", LARGE: "large"},
    place={
        (LEFT, UPPER): "upper left",
        (RIGHT, UPPER): "upper right",
        (LEFT, LOWER): "lower left",
        (RIGHT, LOWER): "lower right",
    },
    this_image=("this image", "these images"),
    the_image=("the image", "each image"),
    questions={
        MODALITY_QUESTION: (
            "What imaging modality is shown in {this_image}?",
            "What type of image is this?",
            "Which examination produced {this_image}?",
        ),
        PRESENCE_QUESTION: (
            "Is there a {lesion} in {this_image}?",
            "Does {this_image} show a {lesion}?",
        ),
        SIDE_QUESTION: (
            "On which side of {the_image} is the {lesion}?",
            "Is the {lesion} on the left or the right side of {the_image}?",
        ),
        REGION_QUESTION: (
            "Is the {lesion} in the upper or the lower part of {the_image}?",
            "In which part of {the_image} is the {lesion}, upper or lower?",
        ),
        SIZE_QUESTION: (
            "Is the {lesion} small or large?",
            "How large is the {lesion}?",
        ),
    },
    caption_present=(
        "{modality} showing a {size} {lesion} in the {place} part of the image.",
        "A {size} {lesion} is seen in the {place} part of this {modality}.",
    ),
    caption_absent=(
        "{modality} with no {lesion} visible.",
        "Normal {modality}: no {lesion} is seen.",
    ),
    inline_present=(
        "{figures} ({modality}) shows a {size} {lesion} in the {place} part of {the_image}.",
        "{figures} ({modality}) show a {size} {lesion} in the {place} part of {the_image}.",
    ),
    inline_absent=("{figures} ({modality}) shows no {lesion}.", "{figures} ({modality}) show no {lesion}."),
    figure_refs=("Figure {a}", "Figures {a} and {b}", "Figures {a}-{c}"),
    context="A {age}-year-old {sex} presented with {symptom} and underwent {exam}. {outcome}",
    sex={"male": "man", "female": "woman"},
    symptom={
        CHEST_XRAY: "cough and shortness of breath",
        HEAD_CT: "headache and dizziness",
        ABDOMINAL_CT: "abdominal pain",
        ULTRASOUND: "abdominal discomfort",
        HISTOLOGY: "a suspicious nodule",
    },
    exam={
        CHEST_XRAY: "a chest X-ray",
        HEAD_CT: "a head CT scan",
        ABDOMINAL_CT: "an abdominal CT scan",
        ULTRASOUND: "an ultrasound examination",
        HISTOLOGY: "a biopsy",
    },
    outcome_present="The examination revealed a {size} {lesion}.",
    outcome_absent="The examination found no {lesion}.",
    real_caption={
        REAL_XRAY: "Chest radiograph (computed radiography) from a DICOM study.",
        REAL_CT: "Computed tomography (CT) slice from a DICOM study.",
        REAL_MRI: "Magnetic resonance imaging (MRI) slice from a DICOM study.",
        REAL_ULTRASOUND: "Ultrasound image from a DICOM study.",
    },
    capitalize_sentences=True,
)

QUESTION_PREFIX = "Q: "  # PMC-CaseReport writes some questions and answers with these prefixes
ANSWER_PREFIX = "A: "
